package provisioner

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/fulfillment-server/fulfillment/store"
)

// DemoHandler serves the demo tenants' pages under /demo/tenants/: a GET
// shows whether the tenant is usable, and POST .../login checks the initial
// credentials, so that a buyer (or a test) can see freezing and releasing
// take effect and the password handed out really work.
//
//	GET  /demo/tenants/{tenantId}        200 active, 423 frozen, 410 released
//	POST /demo/tenants/{tenantId}/login  {"userName":…,"password":…} → 200, 401, 423, 410
func DemoHandler(db *store.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/demo/tenants/")
		tenantID, action, _ := strings.Cut(rest, "/")
		t, err := db.DemoTenantByID(r.Context(), tenantID)
		switch {
		case errors.Is(err, store.ErrNotFound):
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
			writeDemo(w, http.StatusOK, "tenant "+t.TenantID+" is active")
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

func writeDemo(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": message}) //nolint:errcheck // client gone
}
