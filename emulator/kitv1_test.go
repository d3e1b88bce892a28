package emulator

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// TestV1KitBody: a kit body in the V1 shapes (contract §12.10), which the
// server reads back as the same sync.
func TestV1KitBody(t *testing.T) {
	v2 := marketplaceJSON(map[string]any{"instanceId": "I1", "tenantId": "T1", "testFlag": 0, "timeStamp": "20261204101010123",
		"orgInfoList": documentedOrgList([]KitOrgView{{OrgCode: "D1", OrgName: "产品部"}, {OrgCode: "D2", OrgName: "East", ParentCode: "D1"}})})
	v1, err := v1KitBody([]byte(v2))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(v1, &got))
	require.NotContains(t, got, "orgInfoList")
	require.JSONEq(t, `[{"orgCode":"D1","name":"产品部","parentCode":""},{"orgCode":"D2","name":"East","parentCode":"D1"}]`, got["orgInfo"].(string))
	sync, err := koogallery.ParseKitSync(koogallery.KitAllOrgSync, v1)
	require.NoError(t, err)
	require.Equal(t, []koogallery.KitOrg{{OrgCode: "D1", OrgName: "产品部"}, {OrgCode: "D2", OrgName: "East", ParentCode: "D1"}}, sync.Orgs)
	_, err = koogallery.SignV1Kit("k", v1)
	require.NoError(t, err, "every member is a single value: the body can be signed")

	users := marketplaceJSON(map[string]any{"instanceId": "I1", "tenantId": "T1", "appId": "A", "flag": 1, "testFlag": 0,
		"timeStamp": "20261204101010123", "currentSyncTime": "20261204101010123",
		"userList": []map[string]any{{"userName": "alice", "name": "alice", "orgCode": "D1", "role": "admin", "enable": "true"}}})
	v1, err = v1KitBody([]byte(users))
	require.NoError(t, err)
	sync, err = koogallery.ParseKitSync(koogallery.KitAuthSync, v1)
	require.NoError(t, err)
	require.Equal(t, "alice", sync.Users[0].UserName)
	require.NoError(t, json.Unmarshal(v1, &got))
	require.IsType(t, "", got["userList"], "userList travels as a string")
	require.Equal(t, "http://m.example/produce/produceAPI/authSync?x=1", v1KitURL("http://m.example/produce?x=1", koogallery.KitAuthSync))
}
