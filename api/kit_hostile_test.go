package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// TestKitRefusesMalformedBodies: whatever a faulty or hostile caller signs,
// a body that is not a sync the contract describes is answered 000002 (or
// the body limit's refusal) and records nothing; a big but valid sync is
// taken.
func TestKitRefusesMalformedBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withKit(testKitKey, nil))
	h.allocate(t, "kit-hostile")
	before := h.effects(t)
	common := `"instanceId":"kit-hostile","tenantId":"t-1","testFlag":0,"timeStamp":"20261204101010123"`
	for _, tc := range []struct{ name, op, body string }{
		{"not JSON", "tenantSync", `tenantId=t-1`},
		{"a list", "tenantSync", `[{"tenantId":"t-1"}]`},
		{"empty", "tenantSync", ``},
		{"duplicate member", "tenantSync", `{` + common + `,"tenantId":"t-2","tenantCode":"c","name":"n","domainName":"https://d","flag":1}`},
		{"member differing by case", "tenantSync", `{` + common + `,"TenantId":"t-2","tenantCode":"c","name":"n","domainName":"https://d","flag":1}`},
		{"flag out of range", "tenantSync", `{` + common + `,"tenantCode":"c","name":"n","domainName":"https://d","flag":5}`},
		{"flag not a number", "tenantSync", `{` + common + `,"tenantCode":"c","name":"n","domainName":"https://d","flag":"add"}`},
		{"revoke on tenantSync", "tenantSync", `{` + common + `,"tenantCode":"c","name":"n","domainName":"https://d","flag":3}`},
		{"a tenantSync body on authSync", "authSync", `{` + common + `,"tenantCode":"c","name":"n","domainName":"https://d","flag":1}`},
		{"control character in an ID", "tenantSync", `{"instanceId":"kit-hostile","tenantId":"t\u0001","testFlag":0,"tenantCode":"c","name":"n","domainName":"https://d","flag":1}`},
		{"NUL in a name", "tenantSync", `{` + common + `,"tenantCode":"c","name":"a\u0000b","domainName":"https://d","flag":1}`},
		{"users not a list", "authSync", `{` + common + `,"appId":"a","currentSyncTime":"20261204101010123","flag":1,"userList":{"userName":"u"}}`},
		{"user without userName", "authSync", `{` + common + `,"appId":"a","currentSyncTime":"20261204101010123","flag":1,"userList":[{"name":"u","orgCode":"D","role":"user","enable":"true"}]}`},
		{"unknown role", "authSync", `{` + common + `,"appId":"a","currentSyncTime":"20261204101010123","flag":1,"userList":[{"userName":"u","name":"u","orgCode":"D","role":"root","enable":"true"}]}`},
		{"clientSecret missing", "applicationSync", `{` + common + `,"appId":"a","clientId":"c","flag":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header, err := koogallery.SignedKitHeaders(koogallery.FormRaw, testKitKey, []byte(tc.body), time.Now())
			require.NoError(t, err)
			a := h.kit(t, testKitKey, "/produce/produceAPI/v2/"+tc.op, header, []byte(tc.body))
			require.Equal(t, "000002", a.ResultCode, "answer %s", a.Raw)
			require.Equal(t, before, h.effects(t), "a refused sync records nothing")
		})
	}

	t.Run("over the body limit", func(t *testing.T) {
		body := []byte(`{"x":"` + strings.Repeat("a", 1<<20) + `"}`)
		header, err := koogallery.SignedKitHeaders(koogallery.FormRaw, testKitKey, body, time.Now())
		require.NoError(t, err)
		a := h.kit(t, testKitKey, "/produce/produceAPI/v2/tenantSync", header, body)
		require.Equal(t, http.StatusRequestEntityTooLarge, a.Status)
		require.Equal(t, before, h.effects(t))
	})

	t.Run("thousands of users", func(t *testing.T) {
		var users []string
		for i := range 3000 {
			users = append(users, fmt.Sprintf(`{"userName":"user%04d","name":"U %d","orgCode":"D1","role":"user","enable":"true"}`, i, i))
		}
		body := `{` + common + `,"appId":"a","currentSyncTime":"20261204101010123","flag":1,"userList":[` + strings.Join(users, ",") + `]}`
		requireResult(t, h.kitSigned(t, "authSync", []byte(body)), "000000", msgSuccess)
	})
}
