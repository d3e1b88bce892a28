package provisioner

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/fulfillment-server/fulfillment/internal/fault"
)

// Route is an HTTP route the demo application adds to the server's API.
// It has the fields of api.Route, which the command converts it to (the
// api package depends on this one, so this one cannot name it).
type Route struct {
	// Method is the HTTP method; empty means every method.
	Method string
	// Path is in the router's syntax: a final /*name matches the rest of
	// the path. An Admin route's path is under /v1.
	Path string
	// Admin puts the route in the admin API, behind the admin token.
	Admin   bool
	Handler http.Handler
}

// DemoRoutes are the demo application's routes: its tenants' pages, and
// the admin API's switch of its maintenance (POST /v1/demo/maintenance);
// log may be nil.
func DemoRoutes(s *DemoStore, log *slog.Logger) []Route {
	return []Route{
		{Path: "/demo/tenants/*path", Handler: DemoHandler(s)},
		{Method: http.MethodPost, Path: "/demo/maintenance", Admin: true, Handler: DemoMaintenanceHandler(s, log)},
	}
}

// DemoHandler serves the demo tenants' pages under /demo/tenants/: a GET
// shows whether the tenant is usable, and POST .../login checks the initial
// credentials, so that a buyer (or a test) can see freezing and releasing
// take effect and the password handed out really work.
//
//	GET  /demo/tenants/{tenantId}        200 active, 423 frozen, 410 released
//	POST /demo/tenants/{tenantId}/login  {"userName":…,"password":…} → 200, 401, 423, 410
func DemoHandler(s *DemoStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/demo/tenants/")
		tenantID, action, _ := strings.Cut(rest, "/")
		t, err := s.TenantByID(r.Context(), tenantID)
		switch {
		case errors.Is(err, ErrNoDemoTenant):
			writeDemo(w, http.StatusNotFound, "no such tenant")
			return
		case err != nil:
			writeDemo(w, http.StatusServiceUnavailable, "tenant store unavailable")
			return
		}
		switch {
		case action == "" || action == "admin":
			if r.Method != http.MethodGet {
				writeDemo(w, http.StatusMethodNotAllowed, "use GET")
				return
			}
		case action == "login":
			if r.Method != http.MethodPost {
				writeDemo(w, http.StatusMethodNotAllowed, "use POST")
				return
			}
		default:
			writeDemo(w, http.StatusNotFound, "no such page")
			return
		}
		switch t.State {
		case demoDeleted:
			writeDemo(w, http.StatusGone, "this tenant was released and its data deleted")
			return
		case demoFrozen:
			writeDemo(w, http.StatusLocked, "this tenant is frozen: renew the subscription to use it again; its data is kept")
			return
		}
		if action != "login" {
			users, err := s.AuthorisedUsers(r.Context(), t.InstanceID)
			if err != nil {
				writeDemo(w, http.StatusServiceUnavailable, "tenant store unavailable")
				return
			}
			writeDemoPage(w, "tenant "+t.TenantID+" is active", users)
			return
		}
		var creds struct {
			UserName string `json:"userName"`
			Password string `json:"password"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&creds); err != nil {
			writeDemo(w, http.StatusBadRequest, "body must be {\"userName\":…,\"password\":…}")
			return
		}
		userOK := subtle.ConstantTimeCompare([]byte(creds.UserName), []byte(t.UserName)) == 1
		passOK := subtle.ConstantTimeCompare(demoPasswordHash(t.PasswordSalt, creds.Password), t.PasswordHash) == 1
		if !userOK || !passOK {
			writeDemo(w, http.StatusUnauthorized, "wrong user name or password")
			return
		}
		writeDemo(w, http.StatusOK, "logged in to tenant "+t.TenantID)
	})
}

// writeDemoPage is an active tenant's page: its state, and the users of
// the buyer's enterprise authorised to use it (the 联营 kit's authSync).
func writeDemoPage(w http.ResponseWriter, message string, users []string) {
	if users == nil {
		users = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(map[string]any{"message": message, "authorizedUsers": users}) //nolint:errcheck // client gone
}

func writeDemo(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": message}) //nolint:errcheck // client gone
}

// DemoMaintenanceHandler serves POST /v1/demo/maintenance {"on": true|false},
// the demo application's maintenance switch (see Demo.available). It
// answers as the admin API's own handlers do; log may be nil.
func DemoMaintenanceHandler(s *DemoStore, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			On *bool `json:"on"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.On == nil {
			fault.Write(w, r, log, fault.Invalid(`the body must be {"on": true} or {"on": false}`))
			return
		}
		if err := s.SetMaintenance(r.Context(), *body.On); err != nil {
			fault.Write(w, r, log, fault.Database(err))
			return
		}
		log.Info("Demo application maintenance", "on", *body.On)
		writeAdminJSON(w, http.StatusOK, map[string]any{"maintenance": *body.On})
	})
}

// writeAdminJSON writes an answer the way the admin API writes its own, so
// that a client cannot tell this route from the others.
func writeAdminJSON(w http.ResponseWriter, status int, v map[string]any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // client gone
}
