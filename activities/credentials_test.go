package activities_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/activities"
)

func TestSealerRoundTrip(t *testing.T) {
	sealer := activities.Sealer{AccessKey: "access-key-1"}
	cases := []struct{ user, password string }{
		{"admin", "s3cret-P@ss"},
		{"管理员", "密码🔑pässwörd"},
		{"", ""},
		{strings.Repeat("长", 100), strings.Repeat("x", 33)},
	}
	for _, tc := range cases {
		sealed, err := sealer.Seal(tc.user, tc.password)
		require.NoError(t, err)
		require.NotEqual(t, tc.user, sealed.UserName)
		require.NotEqual(t, tc.password, sealed.Password)
		if tc.user != "" {
			require.NotContains(t, sealed.UserName, tc.user)
		}
		if tc.password != "" {
			require.NotContains(t, sealed.Password, tc.password)
		}
		user, password, err := sealer.Open(sealed)
		require.NoError(t, err)
		require.Equal(t, tc.user, user)
		require.Equal(t, tc.password, password)
	}

	// A random IV: the same value seals differently every time.
	a, err := sealer.Seal("admin", "pw")
	require.NoError(t, err)
	b, err := sealer.Seal("admin", "pw")
	require.NoError(t, err)
	require.NotEqual(t, a.UserName, b.UserName)
	require.NotEqual(t, a.Password, b.Password)
}

func TestSealerWrongKey(t *testing.T) {
	sealed, err := activities.Sealer{AccessKey: "access-key-1"}.Seal("管理员 administrator", "密码 a long password value")
	require.NoError(t, err)
	_, _, err = activities.Sealer{AccessKey: "access-key-2"}.Open(sealed)
	require.Error(t, err)

	// A damaged password fails even with the right key.
	sealed.Password = sealed.Password[:16] + "!!!"
	_, _, err = activities.Sealer{AccessKey: "access-key-1"}.Open(sealed)
	require.Error(t, err)
}
