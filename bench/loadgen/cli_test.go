package loadgen

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMainRefusesBadSettings: "fulfillment bench" says what is missing or
// wrong before it sends anything. (make bench's test runs the load for real.)
func TestMainRefusesBadSettings(t *testing.T) {
	keys := map[string]string{"KOOGALLERY_ACCESS_KEY": "ak", "FULFILLMENT_ADMIN_TOKEN": "token"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no access key", map[string]string{"FULFILLMENT_ADMIN_TOKEN": "token"}, nil, "set KOOGALLERY_ACCESS_KEY and FULFILLMENT_ADMIN_TOKEN"},
		{"no admin token", map[string]string{"KOOGALLERY_ACCESS_KEY": "ak"}, nil, "set KOOGALLERY_ACCESS_KEY and FULFILLMENT_ADMIN_TOKEN"},
		{"orders without the open-API keys", keys, []string{"-orders", "127.0.0.1:0"}, "-orders needs KOOGALLERY_AK and KOOGALLERY_SK"},
		{"no instances", keys, []string{"-instances", "0"}, "the number of instances must be at least 1"},
		{"no clients", keys, []string{"-concurrency", "0"}, "the concurrency must be at least 1"},
		{"negative rate", keys, []string{"-rate", "-1"}, "the rate must not be negative"},
		{"redelivery share over 1", keys, []string{"-redeliver", "1.5"}, "the redelivery share must be between 0 and 1"},
		{"unknown flag", keys, []string{"-bogus"}, "flag provided but not defined: -bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Main(t.Context(), tc.args, func(k string) string { return tc.env[k] }, &out)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
