package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/internal/fault"
	"github.com/fulfillment-server/fulfillment/store"
)

// DirectoryView is GET /v1/instances/{instanceId}/directory: the
// enterprises the 联营 kit bound to the instance, each with its app
// credentials (the secret shown only as its SHA-256), users and
// departments.
type DirectoryView struct {
	Tenants []DirectoryTenantView `json:"tenants"`
}

// DirectoryTenantView is one enterprise of an instance's directory.
type DirectoryTenantView struct {
	store.DirectoryTenant
	Apps  []store.DirectoryApp  `json:"apps"`
	Users []store.DirectoryUser `json:"users"`
	Orgs  []store.DirectoryOrg  `json:"orgs"`
}

// getDirectory serves GET /v1/instances/{instanceId}/directory.
func (s *operatorAPI) getDirectory(c *gin.Context) {
	id, ok := s.knownInstance(c)
	if !ok {
		return
	}
	d, err := s.cfg.Store.Directory.Of(c.Request.Context(), id)
	if err != nil {
		fault.Respond(c, s.log, fault.Database(err))
		return
	}
	c.JSON(http.StatusOK, directoryView(d))
}

// knownInstance reads the instanceId of the path and checks that the
// server has that instance, or answers 400, 404 or 503.
func (s *operatorAPI) knownInstance(c *gin.Context) (string, bool) {
	id, err := instanceIDParam(c)
	if err == nil {
		if _, err = s.cfg.Store.Callbacks.InstanceKey(c.Request.Context(), id); errors.Is(err, store.ErrUnknownInstance) {
			err = fault.NotFound("no such instance")
		} else if err != nil {
			err = fault.Database(err)
		}
	}
	if err != nil {
		fault.Respond(c, s.log, err)
		return "", false
	}
	return id, true
}

// directoryView nests an instance's directory by enterprise. Parts of an
// enterprise the directory has no row for (a user synchronised before its
// enterprise) are shown under it all the same.
func directoryView(d store.DirectoryOf) DirectoryView {
	view := DirectoryView{Tenants: []DirectoryTenantView{}}
	index := map[string]int{}
	tenant := func(id string) *DirectoryTenantView {
		i, ok := index[id]
		if !ok {
			i = len(view.Tenants)
			index[id] = i
			view.Tenants = append(view.Tenants, DirectoryTenantView{DirectoryTenant: store.DirectoryTenant{TenantID: id},
				Apps: []store.DirectoryApp{}, Users: []store.DirectoryUser{}, Orgs: []store.DirectoryOrg{}})
		}
		return &view.Tenants[i]
	}
	for _, t := range d.Tenants {
		tenant(t.TenantID).DirectoryTenant = t
	}
	for _, a := range d.Apps {
		t := tenant(a.TenantID)
		t.Apps = append(t.Apps, a)
	}
	for _, u := range d.Users {
		t := tenant(u.TenantID)
		t.Users = append(t.Users, u)
	}
	for _, o := range d.Orgs {
		t := tenant(o.TenantID)
		t.Orgs = append(t.Orgs, o)
	}
	return view
}
