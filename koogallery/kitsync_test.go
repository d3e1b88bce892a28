package koogallery

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const kitCommon = `"instanceId":"huaiweitest123456","tenantId":"68cbc86abc2018ab880d92f36422fa0e","testFlag":0,"timeStamp":"20220413093539534"`

func kitBody(members string) []byte { return []byte("{" + kitCommon + "," + members + "}") }

func TestParseKitSyncTenant(t *testing.T) {
	s, err := ParseKitSync(KitTenantSync, []byte(kitTenantBody))
	require.NoError(t, err)
	require.Equal(t, &KitSync{
		Operation: KitTenantSync, InstanceID: "huaiweitest123456", OrderID: "CS1906666666ABCDE",
		TenantID: "68cbc86abc2018ab880d92f36422fa0e", TimeStamp: "20220413093539534", Flag: KitFlagAdd,
		TenantCode: "huawei", Name: "huaiweitest", DomainName: "https://example.tenantaccount.com",
	}, s)

	// The seller's credential probe: empty ids, debug data, flag as a string.
	s, err = ParseKitSync(KitTenantSync, []byte(`{"instanceId":"","orderId":"","tenantId":"T","testFlag":"1","flag":"2","tenantCode":"c","name":"n","domainName":"d"}`))
	require.NoError(t, err)
	require.Empty(t, s.InstanceID)
	require.True(t, s.Debug)
	require.Equal(t, KitFlagModify, s.Flag)

	// A delete needs only the ids.
	s, err = ParseKitSync(KitTenantSync, []byte(`{"instanceId":"I","tenantId":"T","flag":0}`))
	require.NoError(t, err)
	require.Equal(t, KitFlagDelete, s.Flag)
	require.False(t, s.Debug)
}

func TestParseKitSyncApplication(t *testing.T) {
	s, err := ParseKitSync(KitApplicationSync, kitBody(`"appId":"app-001","clientId":"client-001","clientSecret":"c2VjcmV0","flag":1`))
	require.NoError(t, err)
	require.Equal(t, "app-001", s.AppID)
	require.Equal(t, "client-001", s.ClientID)
	require.Equal(t, "c2VjcmV0", s.ClientSecret)

	s, err = ParseKitSync(KitApplicationSync, kitBody(`"appId":"app-001","flag":0`))
	require.NoError(t, err)
	require.Empty(t, s.ClientSecret)
}

func TestParseKitSyncAuth(t *testing.T) {
	s, err := ParseKitSync(KitAuthSync, []byte(kitAuthBody))
	require.NoError(t, err)
	require.Equal(t, "app-001", s.AppID)
	require.Equal(t, "20220420114117642", s.CurrentSyncTime)
	require.Equal(t, []KitUser{{UserName: "zhangsan01", Name: "张三", OrgCode: "123456789", Role: KitRoleAdmin, Enabled: true}}, s.Users)

	// V1's shapes: extension, employeeType as a string, enable as a boolean,
	// role in upper case, the list as a string; the top level wins.
	s, err = ParseKitSync(KitAuthSync, kitBody(`"appId":"a","flag":2,"currentSyncTime":"20220420114117642","userList":[
		{"userName":"u1","name":"N","orgCode":"O","role":"USER","enable":false,"workPlace":"top",
		 "extension":{"entryDate":"2024-3-1","employeeType":"4","workPlace":"nested","position":"P"}},
		{"userName":"u2","name":"M","orgCode":"O","role":"admin","enable":"FALSE","employeeType":2,"email":"m@example.com"}]`))
	require.NoError(t, err)
	require.Equal(t, []KitUser{
		{UserName: "u1", Name: "N", OrgCode: "O", Role: KitRoleUser, Enabled: false, WorkPlace: "top", EntryDate: "2024-3-1", EmployeeType: 4, Position: "P"},
		{UserName: "u2", Name: "M", OrgCode: "O", Role: KitRoleAdmin, Enabled: false, EmployeeType: 2, Email: "m@example.com"},
	}, s.Users)

	s, err = ParseKitSync(KitAuthSync, kitBody(`"appId":"a","flag":1,"currentSyncTime":"20220420114117642","userList":"[{\"userName\":\"u\",\"name\":\"N\",\"orgCode\":\"O\",\"role\":\"user\",\"enable\":\"true\"}]"`))
	require.NoError(t, err)
	require.Len(t, s.Users, 1)

	// Delete and cancel need only the userName; more than 500 users pass.
	var users []string
	for range 600 {
		users = append(users, `{"userName":"u"}`)
	}
	for _, flag := range []string{"0", "3"} {
		s, err = ParseKitSync(KitAuthSync, kitBody(`"appId":"a","flag":`+flag+`,"currentSyncTime":"20220420114117642","userList":[`+strings.Join(users, ",")+`]`))
		require.NoError(t, err)
		require.Len(t, s.Users, 600)
		require.Empty(t, s.Users[0].Role)
	}
}

func TestParseKitSyncOrgs(t *testing.T) {
	s, err := ParseKitSync(KitSingleOrgSync, kitBody(`"orgCode":"D1","orgName":"产品部","parentCode":"D0","flag":1`))
	require.NoError(t, err)
	require.Equal(t, []KitOrg{{OrgCode: "D1", OrgName: "产品部", ParentCode: "D0"}}, s.Orgs)

	s, err = ParseKitSync(KitSingleOrgSync, kitBody(`"orgCode":"D1","flag":0`))
	require.NoError(t, err)
	require.Equal(t, []KitOrg{{OrgCode: "D1"}}, s.Orgs)

	want := []KitOrg{{OrgCode: "00000001", OrgName: "产品部", ParentCode: "265789314"}, {OrgCode: "265789314", OrgName: "总部"}}
	for name, list := range map[string]string{
		"array":           `"orgInfoList":[{"orgCode":"00000001","orgName":"产品部","parentCode":"265789314"},{"orgCode":"265789314","orgName":"总部","parentCode":""}]`,
		"string":          `"orgInfoList":"[{\"orgCode\":\"00000001\",\"orgName\":\"产品部\",\"parentCode\":\"265789314\"},{\"orgCode\":\"265789314\",\"orgName\":\"总部\"}]"`,
		"bare names":      `"orgInfoList":"[{orgCode:\"00000001\", orgName:\"产品部\", parentCode:\"265789314\" },{ orgCode :\"265789314\", orgName:\"总部\", parentCode:\"\" }]"`,
		"V1 orgInfo/name": `"orgInfo":"[{\"orgCode\":\"00000001\",\"name\":\"产品部\",\"parentCode\":\"265789314\"},{\"orgCode\":\"265789314\",\"name\":\"总部\"}]"`,
	} {
		s, err := ParseKitSync(KitAllOrgSync, kitBody(list))
		require.NoError(t, err, name)
		require.Equal(t, want, s.Orgs, name)
		require.Zero(t, s.Flag, name)
	}

	for _, list := range []string{`"orgInfoList":[]`, `"orgInfoList":"[]"`} {
		s, err = ParseKitSync(KitAllOrgSync, kitBody(list))
		require.NoError(t, err)
		require.Empty(t, s.Orgs)
		require.NotNil(t, s.Orgs)
	}
}

func TestParseKitSyncRefusals(t *testing.T) {
	const user = `{"userName":"u","name":"N","orgCode":"O","role":"user","enable":"true"}`
	auth := func(list string) string {
		return `"appId":"a","flag":1,"currentSyncTime":"20220420114117642","userList":` + list
	}
	for _, tc := range []struct {
		op      KitOperation
		body    string
		message string
	}{
		{KitTenantSync, `[]`, "not a JSON object"},
		{KitTenantSync, `{"tenantId":"T","flag":1,"tenantCode":"c","name":"n","domainName":"d"`, "not a JSON object"},
		{"newInstance", `{"tenantId":"T"}`, "unknown kit operation"},
		{KitTenantSync, `{"flag":0}`, "missing field tenantId"},
		{KitTenantSync, `{"tenantId":"  ","flag":0}`, "missing field tenantId"},
		{KitTenantSync, `{"tenantId":5,"flag":0}`, "field tenantId must be a string"},
		{KitTenantSync, `{"tenantId":"` + strings.Repeat("x", 65) + `","flag":0}`, "field tenantId is longer than 64"},
		{KitTenantSync, `{"tenantId":"T\u0007","flag":0}`, "field tenantId holds a control character"},
		{KitTenantSync, `{"tenantId":"T","instanceId":"I\n","flag":0}`, "field instanceId holds a control character"},
		{KitTenantSync, `{"tenantId":"T","flag":0,"tenantid":"U"}`, "ambiguous"},
		{KitTenantSync, `{"tenantId":"T","flag":0,"flag":1}`, "member flag appears more than once"},
		{KitTenantSync, `{"tenantId":"T"}`, "missing field flag"},
		{KitTenantSync, `{"tenantId":"T","flag":3}`, "field flag must be one of 0, 1, 2"},
		{KitTenantSync, `{"tenantId":"T","flag":1.5}`, "field flag must be a non-negative integer"},
		{KitTenantSync, `{"tenantId":"T","flag":"one"}`, "field flag must be a non-negative integer"},
		{KitTenantSync, `{"tenantId":"T","flag":0,"testFlag":2}`, "field testFlag must be 0 or 1"},
		{KitTenantSync, `{"tenantId":"T","flag":1,"name":"n","domainName":"d"}`, "missing field tenantCode"},
		{KitTenantSync, `{"tenantId":"T","flag":2,"tenantCode":"c","domainName":"d"}`, "missing field name"},
		{KitTenantSync, `{"tenantId":"T","flag":1,"tenantCode":"c","name":"n"}`, "missing field domainName"},
		{KitApplicationSync, `{"tenantId":"T","flag":0}`, "missing field appId"},
		{KitApplicationSync, `{"tenantId":"T","flag":1,"appId":"a","clientSecret":"s"}`, "missing field clientId"},
		{KitApplicationSync, `{"tenantId":"T","flag":1,"appId":"a","clientId":"c"}`, "missing field clientSecret"},
		{KitApplicationSync, `{"tenantId":"T","flag":1,"appId":"a","clientId":"c","clientSecret":"` + strings.Repeat("A", 4097) + `"}`, "field clientSecret is longer"},
		{KitAuthSync, `{"tenantId":"T","flag":4,"appId":"a"}`, "field flag must be one of 0, 1, 2, 3"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[]`)[len(`"appId":"a",`):] + `}`, "missing field appId"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[]`) + `}`, "missing field userList"},
		{KitAuthSync, `{"tenantId":"T","appId":"a","flag":1,"currentSyncTime":"20220420114117642"}`, "missing field userList"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`{}`) + `}`, "field userList must be a list"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`"not json"`) + `}`, "field userList is a string that does not hold a JSON list"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[1]`) + `}`, "field userList[0] must be an object"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[`+user+`,{"name":"N"}]`) + `}`, "missing field userList[1].userName"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[{"userName":"u","orgCode":"O","role":"user"}]`) + `}`, "missing field userList[0].name"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[{"userName":"u","name":"N","role":"user"}]`) + `}`, "missing field userList[0].orgCode"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[{"userName":"u","name":"N","orgCode":"O"}]`) + `}`, "missing field userList[0].role"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[{"userName":"u","name":"N","orgCode":"O","role":"root"}]`) + `}`, "field userList[0].role must be user or admin"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[{"userName":"u","name":"N","orgCode":"O","role":"user","enable":"yes"}]`) + `}`, "field userList[0].enable must be"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[{"userName":"u","name":"N","orgCode":"O","role":"user","employeeType":"x"}]`) + `}`, "field userList[0].employeeType must be a non-negative integer"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[{"userName":"u","name":"N","orgCode":"O","role":"user","UserName":"v"}]`) + `}`, "ambiguous"},
		{KitAuthSync, `{"tenantId":"T",` + auth(`[{"userName":"`+strings.Repeat("u", 65)+`","name":"N","orgCode":"O","role":"user"}]`) + `}`, "field userList[0].userName is longer than 64"},
		{KitAuthSync, `{"tenantId":"T","appId":"a","flag":1,"userList":[` + user + `]}`, "missing field currentSyncTime"},
		{KitAuthSync, `{"tenantId":"T","appId":"a","flag":1,"currentSyncTime":"2022-04-20 11:41","userList":[` + user + `]}`, "field currentSyncTime must be yyyyMMddHHmmssSSS"},
		{KitSingleOrgSync, `{"tenantId":"T","flag":1,"orgName":"n"}`, "missing field orgCode"},
		{KitSingleOrgSync, `{"tenantId":"T","flag":1,"orgCode":"D"}`, "missing field orgName"},
		{KitSingleOrgSync, `{"tenantId":"T","flag":1,"orgCode":"D","orgName":"n","parentCode":"` + strings.Repeat("p", 65) + `"}`, "field parentCode is longer than 64"},
		{KitAllOrgSync, `{"tenantId":"T"}`, "missing field orgInfoList"},
		{KitAllOrgSync, `{"tenantId":"T","orgInfoList":""}`, "field orgInfoList is a string that does not hold a JSON list"},
		{KitAllOrgSync, `{"tenantId":"T","orgInfoList":[],"orgInfo":[]}`, "fields orgInfoList and orgInfo are both given"},
		{KitAllOrgSync, `{"tenantId":"T","orgInfoList":[{"orgName":"n"}]}`, "missing field orgInfoList[0].orgCode"},
		{KitAllOrgSync, `{"tenantId":"T","orgInfoList":"[{orgCode:\"A\",orgCode:\"B\"}]"}`, "field orgInfoList is ambiguous"},
	} {
		_, err := ParseKitSync(tc.op, []byte(tc.body))
		var reqErr *RequestError
		require.True(t, errors.As(err, &reqErr), "%s %s: %v", tc.op, tc.body, err)
		require.Equal(t, ResultInvalidParam, reqErr.Code)
		require.Contains(t, reqErr.Message, tc.message, "%s %s", tc.op, tc.body)
	}
}

func TestQuoteBareNames(t *testing.T) {
	for in, want := range map[string]string{
		`[{orgCode:"1", orgName:"a,b:{c"}]`:    `[{"orgCode":"1", "orgName":"a,b:{c"}]`,
		`[{"orgCode":"1"}]`:                    `[{"orgCode":"1"}]`,
		`[{ a_1 : true, $b:[1, null, false]}]`: `[{ "a_1" : true, "$b":[1, null, false]}]`,
		`[{a:"x\"y, z:1"}]`:                    `[{"a":"x\"y, z:1"}]`,
		`[{a:"unterminated`:                    `[{"a":"unterminated`,
	} {
		require.Equal(t, want, quoteBareNames(in), in)
	}
}

func FuzzParseKitSync(f *testing.F) {
	for _, body := range []string{
		kitTenantBody, kitAuthBody, `{}`, `[]`, ``, `{"tenantId":"T","flag":0}`,
		string(kitBody(`"appId":"a","clientId":"c","clientSecret":"s","flag":1`)),
		string(kitBody(`"orgCode":"D","orgName":"n","flag":2`)),
		string(kitBody(`"orgInfoList":"[{orgCode:\"00000001\", orgName:\"产品部\", parentCode:\"265789314\" }]"`)),
		string(kitBody(`"appId":"a","flag":3,"currentSyncTime":"20220420114117642","userList":"[{\"userName\":\"u\",\"extension\":{\"employeeType\":\"4\"}}]"`)),
	} {
		for i := range KitOperations {
			f.Add(uint8(i), []byte(body))
		}
	}
	f.Fuzz(func(t *testing.T, opIndex uint8, body []byte) {
		op := KitOperations[int(opIndex)%len(KitOperations)]
		s, err := ParseKitSync(op, body)
		if err != nil {
			var reqErr *RequestError
			if !errors.As(err, &reqErr) || reqErr.Code != ResultInvalidParam {
				t.Fatalf("refusal is not a 000002 RequestError: %v", err)
			}
			return
		}
		if strings.TrimSpace(s.TenantID) == "" {
			t.Fatal("an accepted sync has no tenantId")
		}
		if s.Operation != op {
			t.Fatalf("operation %s read as %s", op, s.Operation)
		}
		if op == KitAuthSync && len(s.Users) == 0 {
			t.Fatal("an accepted authSync has no users")
		}
		if op == KitSingleOrgSync && len(s.Orgs) != 1 {
			t.Fatal("an accepted singleOrgSync has not one department")
		}
	})
}
