package koogallery

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// The V1 kit vector of §12.10: the tenantSync body of §12.5 with key
// abcde.
const v1KitVectorBody = `{"instanceId":"huaiweitest123456","orderId":"CS1906666666ABCDE","tenantId":"68cbc86abc2018ab880d92f36422fa0e","tenantCode":"huawei","name":"huaiweitest","domainName":"https://example.tenantaccount.com","flag":1,"testFlag":0,"timeStamp":"20220413093539534"}`

const v1KitVectorToken = "J72W0AwiZJUh72YAnXqgZRMUY1pwb1d9alBkCdMWJnQ="

func TestV1KitAuthTokenVector(t *testing.T) {
	params, err := v1KitParams([]byte(v1KitVectorBody))
	require.NoError(t, err)
	require.Equal(t, "domainName=https://example.tenantaccount.com&flag=1&instanceId=huaiweitest123456&name=huaiweitest&orderId=CS1906666666ABCDE&tenantCode=huawei&tenantId=68cbc86abc2018ab880d92f36422fa0e&testFlag=0&timeStamp=20220413093539534",
		v1StringToSign(params))
	token, err := SignV1Kit("abcde", []byte(v1KitVectorBody))
	require.NoError(t, err)
	require.Equal(t, v1KitVectorToken, token)

	h := http.Header{}
	h.Set(HeaderV1KitAuthToken, v1KitVectorToken)
	require.NoError(t, VerifyV1Kit("abcde", h, []byte(v1KitVectorBody)))
}

// TestV1KitSkipsBlankMembers: blank members are not signed (the official
// sample skips them), so adding or removing one changes nothing; any other
// change of the body, the key or the token is refused as an auth error.
func TestV1KitSkipsBlankMembers(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderV1KitAuthToken, v1KitVectorToken)
	withBlanks := `{"extra":"  ","domainName":"https://example.tenantaccount.com","flag":1,"instanceId":"huaiweitest123456","name":"huaiweitest","orderId":"CS1906666666ABCDE","tenantCode":"huawei","tenantId":"68cbc86abc2018ab880d92f36422fa0e","testFlag":0,"timeStamp":"20220413093539534","none":null,"empty":""}`
	require.NoError(t, VerifyV1Kit("abcde", h, []byte(withBlanks)))

	for name, check := range map[string]func() error{
		"other key": func() error { return VerifyV1Kit("abcdf", h, []byte(v1KitVectorBody)) },
		"changed flag": func() error {
			return VerifyV1Kit("abcde", h, []byte(`{"flag":0`+v1KitVectorBody[len(`{"instanceId":"huaiweitest123456"`):]))
		},
		"no header": func() error { return VerifyV1Kit("abcde", http.Header{}, []byte(v1KitVectorBody)) },
		"token split by a line break": func() error {
			split := http.Header{}
			split.Set(HeaderV1KitAuthToken, v1KitVectorToken[:20]+"\r\n"+v1KitVectorToken[20:])
			return VerifyV1Kit("abcde", split, []byte(v1KitVectorBody))
		},
		"no timeStamp": func() error { return VerifyV1Kit("abcde", h, []byte(`{"tenantId":"T"}`)) },
		"a list":       func() error { return VerifyV1Kit("abcde", h, []byte(`{"userList":[],"timeStamp":"1"}`)) },
		"not JSON":     func() error { return VerifyV1Kit("abcde", h, []byte(`tenantId=T`)) },
	} {
		err := check()
		require.Error(t, err, name)
		require.True(t, IsAuthError(err), "%s: %v", name, err)
		require.NotContains(t, err.Error(), v1KitVectorToken)
	}
}
