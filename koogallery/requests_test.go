package koogallery

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requestBodies holds one valid body per activity, without testFlag.
var requestBodies = map[Activity]string{
	ActivityNewInstance:             `{"activity":"newInstance","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8"}`,
	ActivityQueryInstance:           `{"activity":"queryInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e"}`,
	ActivityRefreshInstance:         `{"activity":"refreshInstance","scene":"RENEWAL","orderId":"R1","orderLineId":"R1-1","instanceId":"I1","productId":"P2","expireTime":"20221124023618256"}`,
	ActivityUpdateInstanceStatus:    `{"activity":"updateInstanceStatus","instanceId":"I1","status":"FREEZE"}`,
	ActivityReleaseInstance:         `{"activity":"releaseInstance","instanceId":"I1","orderId":"U1","orderLineId":"U1-1"}`,
	ActivityUpgradeInstance:         `{"activity":"upgradeInstance","instanceId":"I1","orderId":"G1","orderLineId":"G1-1"}`,
	ActivityChangeInstanceCheck:     `{"activity":"changeInstanceCheck","instanceId":"I1","productInfo":{"skuCode":"sku-2","productId":"prod-2","linearValue":20}}`,
	ActivityOrderNotify:             `{"activity":"orderNotify","orderId":"O1","orderLineId":"O1-1"}`,
	ActivityGetLicenseAsync:         `{"activity":"getLicenseAsync","instanceId":"I1","effectiveTime":"2023-10-27 10:30:15 z","expireTime":"2024-10-27 10:30:15 z","eventId":"E1","deviceFingerprint":"FP-1"}`,
	ActivityRefreshLicenseCode:      `{"activity":"refreshLicenseCode","expireTime":"20230523201932","license":"PL7TQ2","orderId":"R1","orderLineId":"R1-1","productId":"P1","scene":"RENEWAL"}`,
	ActivityUpdateLicenseCodeStatus: `{"activity":"updateLicenseCodeStatus","license":"PL7TQ2","status":"FREEZE"}`,
	ActivityReleaseLicenseCode:      `{"activity":"releaseLicenseCode","license":"PL7TQ2","orderId":"U1","orderLineId":"U1-1"}`,
}

// withField returns body with a top-level field set to the raw JSON value,
// or removed when raw is empty.
func withField(t *testing.T, body, field, raw string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(body), &m))
	if raw == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(raw)
	}
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return string(out)
}

// requireRequestError checks that err is an invalid-parameter RequestError
// with the given message.
func requireRequestError(t *testing.T, err error, message string) {
	t.Helper()
	require.Error(t, err)
	var re *RequestError
	require.True(t, errors.As(err, &re), "error %T %v is not a *RequestError", err, err)
	require.Equal(t, ResultInvalidParam, re.Code)
	if message != "" {
		require.Equal(t, message, re.Message)
		require.Equal(t, message, err.Error())
	}
}

func linear(v int64) *LinearValue { lv := LinearValue(v); return &lv }

func TestParseRequestValidBodies(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		want  Request
		debug bool
	}{
		{
			name: "newInstance",
			body: `{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`,
			want: &NewInstanceRequest{OrderID: "CS2211181819B4LVS", OrderLineID: "CS2211181819B4LVS-000001",
				BusinessID: "87b94795-0603-4e24-8ae5-69420d60e3c8", TestFlag: true},
			debug: true,
		},
		{
			name: "queryInstance",
			body: `{"activity":"queryInstance","instanceId":"I1,I2","testFlag":"0"}`,
			want: &QueryInstanceRequest{InstanceID: "I1,I2"},
		},
		{
			name: "refreshInstance",
			body: `{"activity":"refreshInstance","scene":"TRIAL_TO_FORMAL","orderId":"R1","orderLineId":"R1-1","instanceId":"I1","productId":"P2","expireTime":"20221124023618256","testFlag":"1"}`,
			want: &RefreshInstanceRequest{Scene: SceneTrialToFormal, OrderID: "R1", OrderLineID: "R1-1", InstanceID: "I1",
				ProductID: "P2", ExpireTime: "20221124023618256", TestFlag: true,
				expireAt: time.Date(2022, 11, 24, 2, 36, 18, 256_000_000, time.UTC)},
			debug: true,
		},
		{
			name: "refreshInstance without productId",
			body: `{"activity":"refreshInstance","scene":"RENEWAL","orderId":"R1","orderLineId":"R1-1","instanceId":"I1","expireTime":"20221124023618"}`,
			want: &RefreshInstanceRequest{Scene: SceneRenewal, OrderID: "R1", OrderLineID: "R1-1", InstanceID: "I1",
				ExpireTime: "20221124023618", expireAt: time.Date(2022, 11, 24, 2, 36, 18, 0, time.UTC)},
		},
		{
			name: "updateInstanceStatus",
			body: `{"activity":"updateInstanceStatus","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","status":"UNFREEZE","testFlag":"1"}`,
			want: &UpdateInstanceStatusRequest{InstanceID: "10e758d0-31ad-4c4b-8f1b-81d03469a10e", Status: StatusUnfreeze,
				TestFlag: true},
			debug: true,
		},
		{
			name: "releaseInstance",
			body: `{"activity":"releaseInstance","instanceId":"I1","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`,
			want: &ReleaseInstanceRequest{InstanceID: "I1", OrderID: "CS2211181819B4LVS",
				OrderLineID: "CS2211181819B4LVS-000001", TestFlag: true},
			debug: true,
		},
		{
			name: "releaseInstance at end of retention",
			body: `{"activity":"releaseInstance","instanceId":"I1"}`,
			want: &ReleaseInstanceRequest{InstanceID: "I1"},
		},
		{
			name: "upgradeInstance",
			body: `{"activity":"upgradeInstance","instanceId":"I1","orderId":"G1","orderLineId":"G1-1"}`,
			want: &UpgradeInstanceRequest{InstanceID: "I1", OrderID: "G1", OrderLineID: "G1-1"},
		},
		{
			name: "changeInstanceCheck",
			body: `{"activity":"changeInstanceCheck","instanceId":"I1","productInfo":{"skuCode":"sku-2","productId":"prod-2","linearValue":20},"testFlag":1}`,
			want: &ChangeInstanceCheckRequest{InstanceID: "I1", TestFlag: true,
				ProductInfo: ProductInfo{SkuCode: "sku-2", ProductID: "prod-2", LinearValue: linear(20)}},
			debug: true,
		},
		{
			name:  "orderNotify",
			body:  `{"activity":"orderNotify","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}`,
			want:  &OrderNotifyRequest{OrderID: "CS2211181819B4LVS", OrderLineID: "CS2211181819B4LVS-000001", TestFlag: true},
			debug: true,
		},
		{
			name: "unknown fields are ignored",
			body: `{"activity":"newInstance","orderId":"O1","orderLineId":"O1-1","businessId":"B1","productId":"P","extra":{"nested":[1,2]},"saasExtendParams":"x"}`,
			want: &NewInstanceRequest{OrderID: "O1", OrderLineID: "O1-1", BusinessID: "B1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseRequest([]byte(tc.body))
			require.NoError(t, err)
			require.Equal(t, tc.want, req)
			require.Equal(t, tc.want.Activity(), req.Activity())
			require.Equal(t, tc.debug, req.Debug())
		})
	}
}

func TestParseRequestEveryActivity(t *testing.T) {
	require.Len(t, Activities, 12)
	for _, a := range Activities {
		body, ok := requestBodies[a]
		require.True(t, ok, "no body for %s", a)
		req, err := ParseRequest([]byte(body))
		require.NoError(t, err, a)
		require.Equal(t, a, req.Activity())
		require.False(t, req.Debug())
	}
	refresh, err := ParseRequest([]byte(requestBodies[ActivityRefreshInstance]))
	require.NoError(t, err)
	require.Equal(t, time.Date(2022, 11, 24, 2, 36, 18, 256_000_000, time.UTC), refresh.(*RefreshInstanceRequest).ExpireAt())
}

func TestParseRequestTestFlag(t *testing.T) {
	accepted := []struct {
		raw   string // "" means absent
		debug bool
	}{
		{"", false},
		{`"0"`, false},
		{`0`, false},
		{`false`, false},
		{`null`, false},
		{`""`, false},
		{`"1"`, true},
		{`1`, true},
		{`true`, true},
	}
	rejected := []string{`"2"`, `"yes"`, `2`, `{}`, `[]`, `-1`, `"01"`}
	for _, a := range Activities {
		for _, tc := range accepted {
			t.Run(fmt.Sprintf("%s/%s", a, tc.raw), func(t *testing.T) {
				req, err := ParseRequest([]byte(withField(t, requestBodies[a], "testFlag", tc.raw)))
				require.NoError(t, err)
				require.Equal(t, tc.debug, req.Debug())
			})
		}
		for _, raw := range rejected {
			t.Run(fmt.Sprintf("%s/%s", a, raw), func(t *testing.T) {
				_, err := ParseRequest([]byte(withField(t, requestBodies[a], "testFlag", raw)))
				requireRequestError(t, err, `field testFlag must be "0" or "1"`)
				require.Contains(t, err.Error(), "testFlag")
			})
		}
	}
}

func TestTestFlagMarshal(t *testing.T) {
	b, err := json.Marshal(struct{ F TestFlag }{true})
	require.NoError(t, err)
	require.Equal(t, `{"F":"1"}`, string(b))
	b, err = json.Marshal(struct{ F TestFlag }{false})
	require.NoError(t, err)
	require.Equal(t, `{"F":"0"}`, string(b))
}

func TestParseRequestMissingFields(t *testing.T) {
	cases := map[Activity][]string{
		ActivityNewInstance:          {"orderId", "orderLineId", "businessId"},
		ActivityQueryInstance:        {"instanceId"},
		ActivityRefreshInstance:      {"scene", "orderId", "orderLineId", "instanceId", "expireTime"},
		ActivityUpdateInstanceStatus: {"instanceId", "status"},
		ActivityReleaseInstance:      {"instanceId"},
		ActivityUpgradeInstance:      {"instanceId", "orderId", "orderLineId"},
		ActivityChangeInstanceCheck:  {"instanceId", "productInfo"},
		ActivityOrderNotify:          {"orderId", "orderLineId"},
	}
	for a, fields := range cases {
		for _, field := range fields {
			want := "missing field " + field
			t.Run(string(a)+"/"+field+"/absent", func(t *testing.T) {
				_, err := ParseRequest([]byte(withField(t, requestBodies[a], field, "")))
				requireRequestError(t, err, want)
			})
			blank := `"  "`
			if field == "productInfo" {
				blank = `{}`
			}
			t.Run(string(a)+"/"+field+"/blank", func(t *testing.T) {
				_, err := ParseRequest([]byte(withField(t, requestBodies[a], field, blank)))
				requireRequestError(t, err, want)
			})
			t.Run(string(a)+"/"+field+"/null", func(t *testing.T) {
				_, err := ParseRequest([]byte(withField(t, requestBodies[a], field, "null")))
				requireRequestError(t, err, want)
			})
		}
	}
	// Optional fields may be left out.
	for a, optional := range map[Activity][]string{
		ActivityRefreshInstance: {"productId", "testFlag"},
		ActivityReleaseInstance: {"orderId", "orderLineId"},
	} {
		body := requestBodies[a]
		for _, field := range optional {
			body = withField(t, body, field, "")
		}
		_, err := ParseRequest([]byte(body))
		require.NoError(t, err, a)
	}
}

func TestParseRequestFieldLengths(t *testing.T) {
	id64, id65 := strings.Repeat("a", 64), strings.Repeat("a", 65)
	cases := map[Activity][]string{
		ActivityNewInstance:          {"orderId", "orderLineId", "businessId"},
		ActivityRefreshInstance:      {"orderId", "orderLineId", "instanceId", "productId"},
		ActivityUpdateInstanceStatus: {"instanceId"},
		ActivityReleaseInstance:      {"instanceId", "orderId", "orderLineId"},
		ActivityUpgradeInstance:      {"instanceId", "orderId", "orderLineId"},
		ActivityChangeInstanceCheck:  {"instanceId"},
		ActivityOrderNotify:          {"orderId", "orderLineId"},
	}
	for a, fields := range cases {
		for _, field := range fields {
			t.Run(string(a)+"/"+field, func(t *testing.T) {
				req, err := ParseRequest([]byte(withField(t, requestBodies[a], field, `"`+id64+`"`)))
				require.NoError(t, err)
				require.Contains(t, fmt.Sprintf("%+v", req), id64)

				_, err = ParseRequest([]byte(withField(t, requestBodies[a], field, `"`+id65+`"`)))
				requireRequestError(t, err, "field "+field+" is longer than 64 characters")
			})
		}
	}

	for _, field := range []string{"skuCode", "productId"} {
		t.Run("changeInstanceCheck/productInfo."+field, func(t *testing.T) {
			body := fmt.Sprintf(`{"activity":"changeInstanceCheck","instanceId":"I1","productInfo":{%q:%q}}`, field, id64)
			_, err := ParseRequest([]byte(body))
			require.NoError(t, err)
			body = fmt.Sprintf(`{"activity":"changeInstanceCheck","instanceId":"I1","productInfo":{%q:%q}}`, field, id65)
			_, err = ParseRequest([]byte(body))
			requireRequestError(t, err, "field productInfo."+field+" is longer than 64 characters")
		})
	}

	t.Run("queryInstance single id", func(t *testing.T) {
		_, err := ParseRequest([]byte(withField(t, requestBodies[ActivityQueryInstance], "instanceId", `"`+id64+`"`)))
		require.NoError(t, err)
		_, err = ParseRequest([]byte(withField(t, requestBodies[ActivityQueryInstance], "instanceId", `"`+id65+`"`)))
		requireRequestError(t, err, "an instanceId in the list is longer than 64 characters")
	})

	t.Run("scene", func(t *testing.T) {
		_, err := ParseRequest([]byte(withField(t, requestBodies[ActivityRefreshInstance], "scene", `"`+strings.Repeat("S", 65)+`"`)))
		requireRequestError(t, err, "field scene is longer than 64 characters")
	})
}

func TestQueryInstanceIDs(t *testing.T) {
	nine := func(i int) string { return fmt.Sprintf("id-%06d", i) }
	var ten []string
	for i := range 10 {
		ten = append(ten, nine(i))
	}
	list99 := strings.Join(ten, ",") // 10×9 + 9 commas
	require.Len(t, list99, 99)

	cases := []struct {
		name    string
		value   string
		want    []string
		wantErr string
	}{
		{"one", "I1", []string{"I1"}, ""},
		{"several", "I1,I2,I3", []string{"I1", "I2", "I3"}, ""},
		{"spaces", " I1 , I2 ,I3 ", []string{"I1", "I2", "I3"}, ""},
		{"duplicates keep first order", "I2,I1,I2,I1,I3", []string{"I2", "I1", "I3"}, ""},
		{"empty items", ",I1,,I2,", []string{"I1", "I2"}, ""},
		{"100 characters", list99 + " ", ten, ""},
		{"101 characters", list99 + "  ", nil, "field instanceId is longer than 100 characters"},
		{"only commas and blanks", " , ,, ", nil, "missing field instanceId"},
		{"empty", "", nil, "missing field instanceId"},
		{"one too long among short", "I1," + strings.Repeat("b", 65), nil, "an instanceId in the list is longer than 64 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"activity":"queryInstance","instanceId":%q}`, tc.value)
			req, err := ParseRequest([]byte(body))
			if tc.wantErr != "" {
				requireRequestError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			q := req.(*QueryInstanceRequest)
			require.Equal(t, tc.value, q.InstanceID)
			require.Equal(t, tc.want, q.InstanceIDs())
		})
	}
}

func TestRefreshInstanceExpireTimeAndScene(t *testing.T) {
	const badTime = "field expireTime must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS (UTC)"
	times := []struct {
		value   string
		want    time.Time
		wantErr string
	}{
		{"20221124023618", time.Date(2022, 11, 24, 2, 36, 18, 0, time.UTC), ""},
		{"20221124023618256", time.Date(2022, 11, 24, 2, 36, 18, 256_000_000, time.UTC), ""},
		{"20240229235959999", time.Date(2024, 2, 29, 23, 59, 59, 999_000_000, time.UTC), ""},
		{"20300101000000000", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"2022112402361", time.Time{}, badTime},
		{"202211240236182", time.Time{}, badTime},
		{"2022112402361825", time.Time{}, badTime},
		{"2022112402361a", time.Time{}, badTime},
		{"2022-11-24T02:36", time.Time{}, badTime},
		{"20221324023618", time.Time{}, badTime}, // month 13
		{"20230229000000", time.Time{}, badTime}, // not a leap year
		{"２０２２１１２４０２３６１８", time.Time{}, "field expireTime is longer than 20 characters"},
		{"2022-11-24T02:36:18.256Z", time.Time{}, "field expireTime is longer than 20 characters"},
	}
	for _, tc := range times {
		t.Run("expireTime "+tc.value, func(t *testing.T) {
			req, err := ParseRequest([]byte(withField(t, requestBodies[ActivityRefreshInstance], "expireTime", fmt.Sprintf("%q", tc.value))))
			if tc.wantErr != "" {
				requireRequestError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			got := req.(*RefreshInstanceRequest).ExpireAt()
			require.True(t, tc.want.Equal(got), "got %v, want %v", got, tc.want)
			require.Equal(t, time.UTC, got.Location())
		})
	}

	for _, scene := range []Scene{SceneRenewal, SceneTrialToFormal, SceneUnsubscribeRenewalPeriod, SceneRenewalChange} {
		t.Run("scene "+string(scene), func(t *testing.T) {
			req, err := ParseRequest([]byte(withField(t, requestBodies[ActivityRefreshInstance], "scene", fmt.Sprintf("%q", scene))))
			require.NoError(t, err)
			require.Equal(t, scene, req.(*RefreshInstanceRequest).Scene)
		})
	}
	for _, scene := range []string{"renewal", "UPGRADE", "RENEWAL ", "UNSUBSCRIBE"} {
		t.Run("scene "+scene, func(t *testing.T) {
			_, err := ParseRequest([]byte(withField(t, requestBodies[ActivityRefreshInstance], "scene", fmt.Sprintf("%q", scene))))
			requireRequestError(t, err, "field scene must be one of RENEWAL, TRIAL_TO_FORMAL, UNSUBSCRIBE_RENEWAL_PERIOD, RENEWAL_CHANGE")
		})
	}
}

func TestUpdateInstanceStatusValues(t *testing.T) {
	for _, s := range []InstanceStatus{StatusFreeze, StatusUnfreeze} {
		req, err := ParseRequest([]byte(withField(t, requestBodies[ActivityUpdateInstanceStatus], "status", fmt.Sprintf("%q", s))))
		require.NoError(t, err)
		require.Equal(t, s, req.(*UpdateInstanceStatusRequest).Status)
	}
	for _, s := range []string{"freeze", "DELETE", "FREEZE ", "RELEASE", "ACTIVE"} {
		_, err := ParseRequest([]byte(withField(t, requestBodies[ActivityUpdateInstanceStatus], "status", fmt.Sprintf("%q", s))))
		requireRequestError(t, err, "field status must be FREEZE or UNFREEZE")
	}
	_, err := ParseRequest([]byte(withField(t, requestBodies[ActivityUpdateInstanceStatus], "status", `""`)))
	requireRequestError(t, err, "missing field status")
}

func TestChangeInstanceCheckProductInfo(t *testing.T) {
	cases := []struct {
		name    string
		info    string
		want    ProductInfo
		wantErr string // "-" for an invalid-parameter error with any message
	}{
		{"object", `{"skuCode":"s","productId":"p","linearValue":20}`,
			ProductInfo{SkuCode: "s", ProductID: "p", LinearValue: linear(20)}, ""},
		{"list takes the first", `[{"skuCode":"s1","linearValue":"30"},{"skuCode":"s2","linearValue":5}]`,
			ProductInfo{SkuCode: "s1", LinearValue: linear(30)}, ""},
		{"numeric string", `{"skuCode":"s","linearValue":"20"}`, ProductInfo{SkuCode: "s", LinearValue: linear(20)}, ""},
		{"float", `{"linearValue":20.0}`, ProductInfo{LinearValue: linear(20)}, ""},
		{"quantity only, zero", `{"linearValue":0}`, ProductInfo{LinearValue: linear(0)}, ""},
		{"productId only", `{"productId":"p"}`, ProductInfo{ProductID: "p"}, ""},
		{"unknown nested fields", `{"skuCode":"s","attrs":[1]}`, ProductInfo{SkuCode: "s"}, ""},
		{"absent", ``, ProductInfo{}, "missing field productInfo"},
		{"null", `null`, ProductInfo{}, "missing field productInfo"},
		{"empty object", `{}`, ProductInfo{}, "missing field productInfo"},
		{"empty list", `[]`, ProductInfo{}, "missing field productInfo"},
		{"null quantity", `{"linearValue":null}`, ProductInfo{}, "missing field productInfo"},
		{"not a number", `{"skuCode":"s","linearValue":"many"}`, ProductInfo{}, "-"},
		{"a string", `"sku"`, ProductInfo{}, "-"},
		{"list of strings", `["sku"]`, ProductInfo{}, "-"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := withField(t, requestBodies[ActivityChangeInstanceCheck], "productInfo", tc.info)
			req, err := ParseRequest([]byte(body))
			switch tc.wantErr {
			case "":
				require.NoError(t, err)
				c := req.(*ChangeInstanceCheckRequest)
				require.Equal(t, tc.want, c.ProductInfo)
				require.Equal(t, "I1", c.InstanceID)
			case "-":
				requireRequestError(t, err, "")
			default:
				requireRequestError(t, err, tc.wantErr)
			}
		})
	}
}

func TestParseRequestMalformed(t *testing.T) {
	cases := []struct {
		name string
		body string
		want string // "" accepts any message
	}{
		{"unknown activity", `{"activity":"deleteEverything","instanceId":"I1"}`, "unknown activity"},
		{"activity in other case", `{"activity":"NewInstance","orderId":"O","orderLineId":"L","businessId":"B"}`, "unknown activity"},
		{"missing activity", `{"orderId":"O1","orderLineId":"L1","businessId":"B1"}`, "missing field activity"},
		{"empty activity", `{"activity":"","orderId":"O1"}`, "missing field activity"},
		{"empty object", `{}`, "missing field activity"},
		{"activity not a string", `{"activity":5}`, "field activity must be a string"},
		{"string", `"newInstance"`, "request body is not a JSON object"},
		{"number", `5`, "request body is not a JSON object"},
		{"array", `[{"activity":"newInstance","orderId":"O","orderLineId":"L","businessId":"B"}]`, "request body is not a JSON object"},
		{"empty body", ``, "request body is not a JSON object"},
		{"blank body", "  \n", "request body is not a JSON object"},
		{"truncated", `{"activity":"newInstance","orderId":"O1"`, "request body is not a JSON object"},
		{"trailing garbage", `{"activity":"newInstance","orderId":"O","orderLineId":"L","businessId":"B"} x`, "request body is not a JSON object"},
		{"null", `null`, ""},
		{"orderId a number", `{"activity":"newInstance","orderId":5,"orderLineId":"L1","businessId":"B1"}`, "field orderId has the wrong type"},
		{"instanceId a bool", `{"activity":"updateInstanceStatus","instanceId":true,"status":"FREEZE"}`, "field instanceId has the wrong type"},
		{"status an object", `{"activity":"updateInstanceStatus","instanceId":"I1","status":{}}`, "field status has the wrong type"},
		{"changeInstanceCheck instanceId a number", `{"activity":"changeInstanceCheck","instanceId":7,"productInfo":{"skuCode":"s"}}`, "field instanceId has the wrong type"},
		{"expireTime a number", `{"activity":"refreshInstance","scene":"RENEWAL","orderId":"R","orderLineId":"L","instanceId":"I","expireTime":20221124023618}`, "field expireTime has the wrong type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseRequest([]byte(tc.body))
			require.Nil(t, req)
			requireRequestError(t, err, tc.want)
		})
	}
}

// TestInstanceIDAlphabet: an instanceId travels in Temporal's gRPC
// headers, the admin API's paths, queryInstance's comma-separated list and
// the inbox's keys; whatever would break one of them is refused up front.
func TestInstanceIDAlphabet(t *testing.T) {
	for _, id := range []string{"87b94795-0603-4e24-8ae5-69420d60e3c8", "CS2612041931W3UHR", "inst_1.2-3", "a", "9", strings.Repeat("x", 64)} {
		require.True(t, ValidInstanceID(id), id)
		req, err := ParseRequest(fmt.Appendf(nil, `{"activity":"newInstance","orderId":"O","orderLineId":"L","businessId":%q}`, id))
		require.NoError(t, err, id)
		require.Equal(t, id, req.(*NewInstanceRequest).BusinessID)
	}
	for _, id := range []string{"实例-ü-😀-x", "../../etc/x", "a/b", "a,b", " x ", "x y", "-x", "_x", ".x", "..", "a:b", "%41", "a\tb", "é", strings.Repeat("x", 65)} {
		require.False(t, ValidInstanceID(id), id)
		for _, body := range []string{
			fmt.Sprintf(`{"activity":"newInstance","orderId":"O","orderLineId":"L","businessId":%q}`, id),
			fmt.Sprintf(`{"activity":"updateInstanceStatus","instanceId":%q,"status":"FREEZE"}`, id),
			fmt.Sprintf(`{"activity":"releaseInstance","instanceId":%q}`, id),
			fmt.Sprintf(`{"activity":"queryInstance","instanceId":%q}`, "ok-1,"+id),
		} {
			if strings.Contains(body, "queryInstance") && strings.ContainsAny(id, ", ") {
				continue // a list separator, and blanks around IDs, are the list's own syntax
			}
			_, err := ParseRequest([]byte(body))
			require.Error(t, err, body)
			var re *RequestError
			require.ErrorAs(t, err, &re)
			require.Equal(t, ResultInvalidParam, re.Code)
		}
	}
}

// TestParseRequestReadsNamesExactly: what is applied is what Java reads.
// Names are matched exactly (encoding/json would fold case), and a body
// whose members repeat or differ only in case, at any depth, is refused.
func TestParseRequestReadsNamesExactly(t *testing.T) {
	refused := []struct {
		name, body, want string
	}{
		{"a second activity", `{"activity":"queryInstance","instanceId":"I","activity":"releaseInstance"}`,
			"request body is ambiguous: member activity appears more than once"},
		{"an ACTIVITY", `{"activity":"queryInstance","ACTIVITY":"releaseInstance","instanceId":"I"}`,
			"request body is ambiguous: a member's name differs from activity only in case"},
		{"status twice in two cases", `{"activity":"updateInstanceStatus","instanceId":"I","Status":"UNFREEZE","status":"FREEZE"}`,
			"request body is ambiguous: a member's name differs from status only in case"},
		{"an unknown member twice", `{"activity":"queryInstance","instanceId":"I","x":1,"x":2}`,
			"request body is ambiguous: a member appears more than once"},
		{"unknown members differing in case", `{"activity":"queryInstance","instanceId":"I","Xy":1,"xY":2}`,
			"request body is ambiguous: two members' names differ only in case"},
		{"Unicode case folding (ſ is s)", `{"activity":"refreshInstance","scene":"RENEWAL","ſcene":"TRIAL_TO_FORMAL","orderId":"R","orderLineId":"L","instanceId":"I","expireTime":"20251231235959"}`,
			"request body is ambiguous: a member's name differs from scene only in case"},
		{"nested repeat", `{"activity":"changeInstanceCheck","instanceId":"I","productInfo":{"skuCode":"a","SkuCode":"b"}}`,
			"request body is ambiguous: a member's name differs from skuCode only in case"},
		{"repeat inside a list", `{"activity":"changeInstanceCheck","instanceId":"I","productInfo":[{"skuCode":"a","skuCode":"b"}]}`,
			"request body is ambiguous: member skuCode appears more than once"},
		{"only ACTIVITY", `{"ACTIVITY":"releaseInstance","instanceId":"I"}`, "missing field activity"},
		{"only InstanceId", `{"activity":"updateInstanceStatus","InstanceId":"I","status":"FREEZE"}`, "missing field instanceId"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseRequest([]byte(tc.body))
			require.Nil(t, req)
			requireRequestError(t, err, tc.want)
		})
	}

	t.Run("a name in another case is not the field", func(t *testing.T) {
		req, err := ParseRequest([]byte(`{"activity":"releaseInstance","instanceId":"I","TestFlag":"1","OrderId":"X"}`))
		require.NoError(t, err)
		require.Equal(t, &ReleaseInstanceRequest{InstanceID: "I"}, req)
		require.False(t, req.Debug(), "Java reads no testFlag here, so this is a real release")

		req, err = ParseRequest([]byte(`{"activity":"changeInstanceCheck","instanceId":"I","productInfo":{"SKUCODE":"x","productId":"p"}}`))
		require.NoError(t, err)
		require.Equal(t, ProductInfo{ProductID: "p"}, req.(*ChangeInstanceCheckRequest).ProductInfo)
	})
}

func TestEncodeResponse(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want string
	}{
		{
			name: "chinese, emoji and HTML characters",
			v:    Response{ResultCode: ResultSuccess, ResultMsg: "成功 😀 <b>&amp;</b> > \"q\""},
			want: `{"resultCode":"000000","resultMsg":"\u6210\u529f \ud83d\ude00 <b>&amp;</b> > \"q\""}`,
		},
		{
			name: "newInstance",
			v:    NewInstanceResponse{ResultCode: ResultProcessing, ResultMsg: "processing", InstanceID: "I1"},
			want: `{"resultCode":"000004","resultMsg":"processing","instanceId":"I1"}`,
		},
		{
			name: "newInstance failure omits instanceId",
			v:    NewInstanceResponse{ResultCode: ResultInternalError, ResultMsg: "失败"},
			want: `{"resultCode":"000005","resultMsg":"\u5931\u8d25"}`,
		},
		{
			name: "queryInstance",
			v: QueryInstanceResponse{ResultCode: ResultSuccess, ResultMsg: "success", Info: []InstanceInfo{{
				InstanceID: "I1",
				AppInfo: &AppInfo{FrontEndURL: "https://app.example.com/t?a=1&b=2", UserName: "u",
					Password: "p", Memo: "欢迎 café"},
			}}},
			want: `{"resultCode":"000000","resultMsg":"success","info":[{"instanceId":"I1","appInfo":{"frontEndUrl":"https://app.example.com/t?a=1&b=2","userName":"u","password":"p","memo":"\u6b22\u8fce caf\u00e9"}}]}`,
		},
		{
			name: "queryInstance with no instances",
			v:    QueryInstanceResponse{ResultCode: ResultInstanceNotFound, ResultMsg: "not found", Info: []InstanceInfo{}},
			want: `{"resultCode":"000003","resultMsg":"not found","info":[]}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeResponse(tc.v)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
			require.False(t, strings.HasSuffix(string(got), "\n"))
			require.True(t, json.Valid(got))
			for _, b := range got {
				require.Less(t, b, byte(0x80), "non-ASCII byte in %s", got)
			}

			// It decodes back to the same value.
			back := newLike(tc.v)
			require.NoError(t, json.Unmarshal(got, back))
			require.Equal(t, tc.v, deref(back))
		})
	}

	_, err := EncodeResponse(map[string]any{"bad": make(chan int)})
	require.Error(t, err)
}

// newLike returns a pointer to a new zero value of v's type.
func newLike(v any) any {
	switch v.(type) {
	case Response:
		return &Response{}
	case NewInstanceResponse:
		return &NewInstanceResponse{}
	case QueryInstanceResponse:
		return &QueryInstanceResponse{}
	}
	panic(fmt.Sprintf("unexpected %T", v))
}

func deref(p any) any {
	switch p := p.(type) {
	case *Response:
		return *p
	case *NewInstanceResponse:
		return *p
	case *QueryInstanceResponse:
		return *p
	}
	panic(fmt.Sprintf("unexpected %T", p))
}

func TestEscapeNonASCII(t *testing.T) {
	cases := map[string]string{
		`"plain"`:        `"plain"`,
		`"é"`:            `"\u00e9"`,
		`"中"`:            `"\u4e2d"`,
		`"😀"`:            `"\ud83d\ude00"`,
		"\"\U0010FFFF\"": `"\udbff\udfff"`,
		`"\uFFFF"`:       `"\uFFFF"`, // already escaped: untouched
		"\"\uFFFF\"":     `"\uffff"`,
		`{"a":"x<y>&z"}`: `{"a":"x<y>&z"}`,
	}
	for in, want := range cases {
		got := EscapeNonASCII([]byte(in))
		require.Equal(t, want, string(got), "input %q", in)
		var a, b any
		require.NoError(t, json.Unmarshal([]byte(in), &a))
		require.NoError(t, json.Unmarshal(got, &b))
		require.Equal(t, a, b, "same meaning for %q", in)
	}
}

func TestParseTime(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"20221124023618", time.Date(2022, 11, 24, 2, 36, 18, 0, time.UTC), true},
		{"20221124023618256", time.Date(2022, 11, 24, 2, 36, 18, 256_000_000, time.UTC), true},
		{"20221124023618000", time.Date(2022, 11, 24, 2, 36, 18, 0, time.UTC), true},
		{"19700101000000", time.Unix(0, 0).UTC(), true},
		{"", time.Time{}, false},
		{"2022112402361", time.Time{}, false},
		{"202211240236182", time.Time{}, false},
		{"2022112402361825", time.Time{}, false},
		{"202211240236182561", time.Time{}, false},
		{"2022112402361x", time.Time{}, false},
		{"-2022112402361", time.Time{}, false},
		{"20221124 23618", time.Time{}, false},
		{"20221124246000", time.Time{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTime(tc.in)
			if !tc.ok {
				require.Error(t, err)
				require.True(t, got.IsZero())
				return
			}
			require.NoError(t, err)
			require.True(t, tc.want.Equal(got), "got %v, want %v", got, tc.want)
			require.Equal(t, time.UTC, got.Location())
		})
	}
}

func TestFormatTime(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	at := time.Date(2022, 11, 24, 10, 36, 18, 256_789_000, shanghai) // 02:36:18.256789 UTC
	require.Equal(t, "20221124023618", FormatTime(at))
	require.Equal(t, "20221124023618256", FormatTimeMillis(at))
	require.Equal(t, "20300101000000000", FormatTimeMillis(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)))
	require.Equal(t, "20300101000000005", FormatTimeMillis(time.Date(2030, 1, 1, 0, 0, 0, 5_000_000, time.UTC)))

	for _, tm := range []time.Time{
		at,
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 1_000_000, time.Local),
	} {
		back, err := ParseTime(FormatTime(tm))
		require.NoError(t, err)
		require.True(t, tm.Truncate(time.Second).Equal(back), "%v → %v", tm, back)
		back, err = ParseTime(FormatTimeMillis(tm))
		require.NoError(t, err)
		require.True(t, tm.Truncate(time.Millisecond).Equal(back), "%v → %v", tm, back)
	}
	for _, s := range []string{"20221124023618", "20221124023618256", "20000229000000000"} {
		tm, err := ParseTime(s)
		require.NoError(t, err)
		if len(s) == 14 {
			require.Equal(t, s, FormatTime(tm))
		} else {
			require.Equal(t, s, FormatTimeMillis(tm))
		}
	}
}

func TestOrderInfoLine(t *testing.T) {
	two := OrderInfo{OrderLines: []OrderLine{{OrderLineID: "L1", ChargingMode: ChargingPeriod}, {OrderLineID: "L2", ChargingMode: ChargingOnDemand}}}
	one := OrderInfo{OrderLines: []OrderLine{{OrderLineID: "L1", PeriodType: "month"}}}
	none := OrderInfo{}
	cases := []struct {
		name   string
		order  OrderInfo
		lineID string
		want   string // "" when not found
	}{
		{"by id, first", two, "L1", "L1"},
		{"by id, second", two, "L2", "L2"},
		{"missing id", two, "L3", ""},
		{"empty id with several lines", two, "", ""},
		{"empty id with a single line", one, "", "L1"},
		{"single line by id", one, "L1", "L1"},
		{"single line, other id", one, "L9", ""},
		{"no lines", none, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line, ok := tc.order.Line(tc.lineID)
			if tc.want == "" {
				require.False(t, ok)
				require.Equal(t, OrderLine{}, line)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.want, line.OrderLineID)
		})
	}
	line, ok := two.Line("L2")
	require.True(t, ok)
	require.Equal(t, ChargingOnDemand, line.ChargingMode)
}

func TestLinearValueUnmarshal(t *testing.T) {
	cases := []struct {
		raw     string
		want    *LinearValue
		wantErr bool
	}{
		{`20`, linear(20), false},
		{`"20"`, linear(20), false},
		{`20.0`, linear(20), false},
		{`" 20 "`, linear(20), false},
		{`20.5`, nil, true},
		{`"20.5"`, nil, true},
		{`1e400`, nil, true},
		{`0`, linear(0), false},
		{`"0"`, linear(0), false},
		{`9007199254740993`, linear(9007199254740993), false},
		{`null`, nil, false},
		{`"abc"`, nil, true},
		{`true`, nil, true},
		{`{}`, nil, true},
		{`[20]`, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			var p ProductInfo
			err := json.Unmarshal([]byte(`{"skuCode":"s","linearValue":`+tc.raw+`}`), &p)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "s", p.SkuCode)
			require.Equal(t, tc.want, p.LinearValue)
		})
	}

	// Unmarshalled directly, null and an empty string are zero.
	for _, raw := range []string{`null`, `""`} {
		v := LinearValue(7)
		require.NoError(t, json.Unmarshal([]byte(raw), &v), raw)
		require.Equal(t, LinearValue(0), v, raw)
	}
	var v LinearValue
	err := json.Unmarshal([]byte(`"twenty"`), &v)
	require.Error(t, err)
	require.Contains(t, err.Error(), "not a whole number")

	// The order's line product uses the same decoding.
	var order OrderInfo
	require.NoError(t, json.Unmarshal([]byte(`{"orderId":"O1","orderLine":[{"orderLineId":"L1","productInfo":[{"skuCode":"s","linearValue":"15"}]}]}`), &order))
	line, ok := order.Line("L1")
	require.True(t, ok)
	require.Equal(t, linear(15), line.Product().LinearValue)
}

// requestErrorMessages are every message ParseRequest may answer with.
// Field names come from the request types, never from the body, so an
// error can never echo what the caller sent.
var requestErrorMessages = []*regexp.Regexp{
	regexp.MustCompile(`^request body is not a JSON object$`),
	regexp.MustCompile(`^missing field [a-zA-Z.]+$`),
	regexp.MustCompile(`^unknown activity$`),
	regexp.MustCompile(`^field activity must be a string$`),
	regexp.MustCompile(`^field testFlag must be "0" or "1"$`),
	regexp.MustCompile(`^field [a-zA-Z.]+ has the wrong type$`),
	regexp.MustCompile(`^field [a-zA-Z.]+ is longer than [0-9]+ characters$`),
	regexp.MustCompile(`^an instanceId in the list is longer than 64 characters$`),
	regexp.MustCompile(`^request body does not match activity (newInstance|queryInstance|refreshInstance|updateInstanceStatus|releaseInstance|upgradeInstance|changeInstanceCheck|orderNotify|getLicenseAsync|refreshLicenseCode|updateLicenseCodeStatus|releaseLicenseCode)$`),
	regexp.MustCompile(`^field scene must be RENEWAL or UNSUBSCRIBE_RENEWAL_PERIOD$`),
	regexp.MustCompile(`^field license must be printable ASCII without spaces$`),
	regexp.MustCompile(`^field (effectiveTime|expireTime) must be a UTC time like "2023-10-27 10:30:15 z", RFC 3339 or yyyyMMddHHmmss$`),
	regexp.MustCompile(`^field scene must be one of RENEWAL, TRIAL_TO_FORMAL, UNSUBSCRIBE_RENEWAL_PERIOD, RENEWAL_CHANGE$`),
	regexp.MustCompile(`^field expireTime must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS \(UTC\)$`),
	regexp.MustCompile(`^field status must be FREEZE or UNFREEZE$`),
	regexp.MustCompile(`^field (businessId|instanceId) must be letters, digits, '-', '_' or '\.', starting with a letter or a digit$`),
	regexp.MustCompile(`^an instanceId in the list is not letters, digits, '-', '_' or '\.', starting with a letter or a digit$`),
	regexp.MustCompile(`^request body is ambiguous: (member [a-zA-Z]+ appears more than once|a member appears more than once|a member's name differs from [a-zA-Z]+ only in case|two members' names differ only in case)$`),
}

// FuzzParseRequest: any body gives either a typed request that survives an
// encode/parse round trip unchanged and keeps the documented limits, or a
// *RequestError answered 000002 whose message is one of the fixed texts.
func FuzzParseRequest(f *testing.F) {
	for _, body := range requestBodies {
		f.Add([]byte(body))
		f.Add([]byte(strings.Replace(body, `"activity"`, `"testFlag":"1","activity"`, 1)))
	}
	for _, body := range []string{
		``, `null`, `{}`, `[]`, `"newInstance"`, `{"activity":5}`, `{"activity":"NEWINSTANCE"}`,
		`{"ACTIVITY":"releaseInstance","InstanceId":"I1"}`,
		`{"activity":"releaseInstance","activity":"newInstance","instanceId":"I1"}`,
		`{"activity":"queryInstance","instanceId":" a , b ,,a, "}`,
		`{"activity":"queryInstance","instanceId":",,,"}`,
		`{"activity":"newInstance","orderId":"O\u0000","orderLineId":"L","businessId":"B"}`,
		"{\"activity\":\"newInstance\",\"orderId\":\"O\xff\",\"orderLineId\":\"L\",\"businessId\":\"B\"}",
		`{"activity":"newInstance","orderId":"   ","orderLineId":"L","businessId":"B"}`,
		`{"activity":"refreshInstance","scene":"RENEWAL","orderId":"R","orderLineId":"L","instanceId":"I","expireTime":"2022112402361"}`,
		`{"activity":"refreshInstance","scene":"RENEWAL_CHANGE","orderId":"R","orderLineId":"L","instanceId":"I","expireTime":"20221324023618"}`,
		`{"activity":"changeInstanceCheck","instanceId":"I","productInfo":[{"linearValue":"20"},{"skuCode":"x"}]}`,
		`{"activity":"changeInstanceCheck","instanceId":"I","productInfo":{"linearValue":20.5}}`,
		`{"activity":"changeInstanceCheck","instanceId":"I","productInfo":{"linearValue":""}}`,
		`{"activity":"changeInstanceCheck","instanceId":"I","productInfo":null}`,
		`{"activity":"updateInstanceStatus","instanceId":"I","status":"FREEZE","testFlag":true}`,
		`{"activity":"orderNotify","orderId":"O","orderLineId":"L","testFlag":2}`,
		`{"activity":"orderNotify","orderId":"O","orderLineId":"L","extra":{"deep":[[[[{}]]]]}}`,
		`{"activity":"newInstance","orderId":"` + strings.Repeat("x", 65) + `","orderLineId":"L","businessId":"B"}`,
		`{"activity":"refreshLicenseCode","scene":"TRIAL_TO_FORMAL","orderId":"R","orderLineId":"L","license":"PL1","expireTime":"20230523201932"}`,
		`{"activity":"updateLicenseCodeStatus","license":"PL 1","status":"UNFREEZE","testFlag":"1"}`,
		`{"activity":"releaseLicenseCode","license":"` + strings.Repeat("L", 65) + `"}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(body)
		if err != nil {
			require.Nil(t, req)
			var re *RequestError
			require.ErrorAs(t, err, &re)
			require.Equal(t, ResultInvalidParam, re.Code)
			known := false
			for _, m := range requestErrorMessages {
				known = known || m.MatchString(re.Message)
			}
			require.True(t, known, "unexpected error message %q", re.Message)
			return
		}
		require.Contains(t, Activities, req.Activity())
		requireStringsWithin(t, reflect.ValueOf(req), 100)

		// Round trip: what was understood, encoded again, is understood
		// the same way.
		encoded, err := json.Marshal(req)
		require.NoError(t, err)
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(encoded, &fields))
		fields["activity"], _ = json.Marshal(req.Activity())
		encoded, err = json.Marshal(fields)
		require.NoError(t, err)
		again, err := ParseRequest(encoded)
		require.NoError(t, err, "re-encoded as %s", encoded)
		require.Equal(t, req, again)
		require.Equal(t, req.Debug(), again.Debug())
	})
}

// requireStringsWithin checks every string field of a request against the
// longest documented field (the 100-character queryInstance list).
func requireStringsWithin(t *testing.T, v reflect.Value, limit int) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			requireStringsWithin(t, v.Elem(), limit)
		}
	case reflect.String:
		require.LessOrEqual(t, v.Len(), limit)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			switch {
			case !f.IsExported():
			case f.Name == "DeviceFingerprint":
				// The one long field: up to 1024 characters (§13.2).
				requireStringsWithin(t, v.Field(i), MaxFingerprintLen)
			default:
				requireStringsWithin(t, v.Field(i), limit)
			}
		}
	}
}

func TestLicenseCodeCallbacksParse(t *testing.T) {
	req, err := ParseRequest([]byte(requestBodies[ActivityRefreshLicenseCode]))
	require.NoError(t, err)
	refresh := req.(*RefreshLicenseCodeRequest)
	require.Equal(t, "PL7TQ2", refresh.Code())
	require.Equal(t, time.Date(2023, 5, 23, 20, 19, 32, 0, time.UTC), refresh.ExpireAt())
	require.True(t, IsLicenseCodeActivity(req.Activity()))
	require.False(t, IsLicenseCodeActivity(ActivityRefreshInstance))
	require.Equal(t, ActivityRefreshLicenseCode, PeekActivity([]byte(requestBodies[ActivityRefreshLicenseCode])))
	require.Equal(t, Activity(""), PeekActivity([]byte(`{"activity":5}`)))
	require.Equal(t, Activity(""), PeekActivity([]byte(`not json`)))

	status, err := ParseRequest([]byte(requestBodies[ActivityUpdateLicenseCodeStatus]))
	require.NoError(t, err)
	require.Equal(t, StatusFreeze, status.(*UpdateLicenseCodeStatusRequest).Status)

	release, err := ParseRequest([]byte(requestBodies[ActivityReleaseLicenseCode]))
	require.NoError(t, err)
	require.Equal(t, "U1", release.(*ReleaseLicenseCodeRequest).OrderID)

	for body, message := range map[string]string{
		withField(t, requestBodies[ActivityRefreshLicenseCode], "scene", `"TRIAL_TO_FORMAL"`):               "field scene must be RENEWAL or UNSUBSCRIBE_RENEWAL_PERIOD",
		withField(t, requestBodies[ActivityRefreshLicenseCode], "license", ""):                              "missing field license",
		withField(t, requestBodies[ActivityRefreshLicenseCode], "expireTime", `"2023-05-23"`):               "field expireTime must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS (UTC)",
		withField(t, requestBodies[ActivityUpdateLicenseCodeStatus], "status", `"EXPIRED"`):                 "field status must be FREEZE or UNFREEZE",
		withField(t, requestBodies[ActivityUpdateLicenseCodeStatus], "license", `"PL 7"`):                   "field license must be printable ASCII without spaces",
		withField(t, requestBodies[ActivityReleaseLicenseCode], "license", `"`+strings.Repeat("L", 65)+`"`): "field license is longer than 64 characters",
	} {
		_, err := ParseRequest([]byte(body))
		requireRequestError(t, err, message)
	}
}
