package koogallery

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// v1Queries are valid V1 calls, one or more per activity, as decoded
// parameters (a&b=c form, values unescaped by url.ParseQuery).
var v1Queries = []string{
	"activity=newInstance&customerId=68cbc86abc2018ab880d92f36422fa0e&customerName=&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&orderId=CS1906666666ABCDE&skuCode=s-1&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903&expireTime=20200727153156",
	"activity=newInstance&customerId=c-1&customerName=%E5%8D%8E%E4%B8%BA%20%E6%B5%8B%E8%AF%95&userId=u1&userName=n1&mobilePhone=A1b2C3d4E5f6G7h8r9nJcNFNHV27ys2x%2BzjRfg%3D%3D&email=e&businessId=b-1&orderId=CS1&skuCode=s-1&productId=p-1&trialFlag=1&chargingMode=1&amount=10&diskSize=20&bandWidth=5&periodType=month&periodNumber=3&orderAmount=199.900&provisionType=1&timeStamp=20240101000000000",
	"activity=refreshInstance&orderId=R1&instanceId=I1&productId=p-2&expireTime=20250101000000&trialToFormal=1&periodType=year&periodNumber=1&orderAmount=1200&timeStamp=20240101000000000",
	"activity=refreshInstance&orderId=R2&instanceId=I1&expireTime=20241201000000000&orderAmount=-99.5&timeStamp=20240101000000000",
	"activity=expireInstance&instanceId=03pf80c2bae96vc49b80b917bea776d7&orderId=CS1906666666ABCDE&testFlag=0&timeStamp=20170725025113409",
	"activity=releaseInstance&instanceId=abc123&testFlag=0&timeStamp=20170725025113409",
	"activity=releaseInstance&instanceId=abc123&orderId=CS1&orderAmount=0&timeStamp=20170725025113409",
	"activity=upgrade&instanceId=I1&orderId=U1&skuCode=s-2&productId=p-2&amount=50&saasExtendParams=W3sibmFtZSI6ImEiLCJ2YWx1ZSI6ImIifV0%3D&timeStamp=20240101000000000",
	"activity=instanceStatus&instanceId=huaweitest123456&instanceStatus=FREEZE&testFlag=1&timeStamp=20230327070251713",
	"activity=instanceStatus&instanceId=huaweitest123456&instanceStatus=NORMAL&timeStamp=20230327070251713",
	"activity=queryInstance&instanceId=I1,I2&timeStamp=20240101000000000",
	"activity=getLicense&customerId=c-1&businessId=b-2&orderId=L1&productId=p-1&expireTime=20250101000000&periodType=year&amount=5&timeStamp=20240101000000000",
	"activity=refreshLicense&orderId=L2&instanceId=I9&expireTime=20260101000000&periodNumber=1&timeStamp=20240101000000000",
	"activity=expireLicense&instanceId=I9&orderId=L1&timeStamp=20240101000000000",
	"activity=releaseLicense&instanceId=I9&orderId=L1&timeStamp=20240101000000000",
}

func parseV1(t *testing.T, query string) V1Request {
	t.Helper()
	params, err := url.ParseQuery(query)
	require.NoError(t, err)
	req, err := ParseV1Request(params)
	require.NoError(t, err, query)
	return req
}

func TestParseV1RequestEveryActivity(t *testing.T) {
	seen := map[V1Activity]bool{}
	for _, q := range v1Queries {
		req := parseV1(t, q)
		seen[req.V1Activity()] = true
		require.Equal(t, url.Values(mustQuery(t, q)).Get("activity"), string(req.V1Activity()))
	}
	for _, a := range V1Activities {
		require.True(t, seen[a], "no valid query for %s", a)
	}
}

func mustQuery(t *testing.T, q string) url.Values {
	t.Helper()
	params, err := url.ParseQuery(q)
	require.NoError(t, err)
	return params
}

func TestParseV1NewInstance(t *testing.T) {
	req := parseV1(t, v1Queries[1]).(*V1NewInstanceRequest)
	require.False(t, req.Debug())
	require.Equal(t, "20240101000000000", req.TimeStamp)
	require.Equal(t, V1Order{
		CustomerID: "c-1", CustomerName: "华为 测试", UserID: "u1", UserName: "n1",
		MobilePhone: "A1b2C3d4E5f6G7h8r9nJcNFNHV27ys2x+zjRfg==", Email: "e",
		BusinessID: "b-1", OrderID: "CS1", SkuCode: "s-1", ProductID: "p-1", TrialFlag: true,
		ChargingMode: 1, Amount: 10, DiskSize: 20, BandWidth: 5, PeriodType: "month", PeriodNumber: 3,
		OrderAmount: "199.900", ProvisionType: 1,
	}, req.V1Order)
	phone, err := DecryptField("9fa6c870-8bb0-4e9b-b71e-4c223300156f", AES128, req.MobilePhone)
	require.NoError(t, err)
	require.Equal(t, "admin", phone, "the encrypted fields arrive as sent")

	first := parseV1(t, v1Queries[0]).(*V1NewInstanceRequest)
	require.True(t, first.Debug())
	require.Empty(t, first.CustomerName, "an empty customerName is absent")
	require.Equal(t, time.Date(2020, 7, 27, 15, 31, 56, 0, time.UTC), first.ExpireAt())
}

func TestParseV1Refresh(t *testing.T) {
	trial := parseV1(t, v1Queries[2]).(*V1RefreshInstanceRequest)
	require.True(t, trial.TrialToFormal)
	require.False(t, trial.Refund())
	require.Equal(t, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), trial.ExpireAt())
	require.Equal(t, "p-2", trial.ProductID)

	refund := parseV1(t, v1Queries[3]).(*V1RefreshInstanceRequest)
	require.True(t, refund.Refund(), "a negative orderAmount is a refunded renewal (退续费)")
	require.Equal(t, "-99.5", refund.OrderAmount)
	require.Equal(t, time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC), refund.ExpireAt())
	for amount, want := range map[string]bool{"-0": false, "-0.000": false, "0": false, "": false, "-0.001": true, "-10": true} {
		require.Equal(t, want, (&V1RefreshInstanceRequest{OrderAmount: amount}).Refund(), amount)
	}
}

func TestParseV1Others(t *testing.T) {
	status := parseV1(t, v1Queries[8]).(*V1InstanceStatusRequest)
	require.Equal(t, V1StatusFreeze, status.Status)
	require.True(t, status.Debug())

	up := parseV1(t, v1Queries[7]).(*V1UpgradeRequest)
	require.Equal(t, 50, up.Amount)
	extend, err := up.ExtendParams()
	require.NoError(t, err)
	require.Equal(t, []V1ExtendParam{{Name: "a", Value: "b"}}, extend)

	rel := parseV1(t, v1Queries[5]).(*V1ReleaseInstanceRequest)
	require.Equal(t, "abc123", rel.InstanceID)
	require.Empty(t, rel.OrderID, "the documented example has no orderId")

	query := parseV1(t, v1Queries[10]).(*V1QueryInstanceRequest)
	require.Equal(t, []string{"I1", "I2"}, query.InstanceIDs())

	lic := parseV1(t, v1Queries[11]).(*V1GetLicenseRequest)
	require.Empty(t, lic.SkuCode, "skuCode is optional for getLicense")
	require.Equal(t, 5, lic.Amount)
}

func TestV1ExtendParams(t *testing.T) {
	list := `[{"name":"email","value":"a@b.com"}]`
	b64 := base64.StdEncoding.EncodeToString([]byte(list))
	for _, s := range []string{b64, url.QueryEscape(b64)} {
		got, err := decodeExtendParams(s)
		require.NoError(t, err)
		require.Equal(t, []V1ExtendParam{{Name: "email", Value: "a@b.com"}}, got)
	}
	got, err := decodeExtendParams("")
	require.NoError(t, err)
	require.Nil(t, got)
	_, err = decodeExtendParams("!!")
	require.ErrorContains(t, err, "not base64")
	_, err = decodeExtendParams(base64.StdEncoding.EncodeToString([]byte(`{"a":1}`)))
	require.ErrorContains(t, err, "not a JSON list")
}

func TestParseV1RequestRefusals(t *testing.T) {
	base := "&timeStamp=20240101000000000"
	for _, tc := range []struct{ query, msg string }{
		{"timeStamp=20240101000000000", "missing field activity"},
		{"activity=NEWINSTANCE" + base, "unknown activity"},
		{"activity=updateInstanceStatus&instanceId=I&status=FREEZE" + base, "unknown activity"},
		{"activity=expireInstance&activity=releaseInstance&instanceId=I&orderId=O" + base, "field activity is repeated"},
		{"activity=expireInstance&instanceId=I&orderId=O", "missing field timeStamp"},
		{"activity=expireInstance&instanceId=I&orderId=O&timeStamp=2024", "field timeStamp must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS (UTC)"},
		{"activity=expireInstance&instanceId=I" + base, "missing field orderId"},
		{"activity=expireInstance&instanceId=I&orderId=%20%20" + base, "missing field orderId"},
		{"activity=expireInstance&instanceId=I/2&orderId=O" + base, "field instanceId must be letters, digits, '-', '_' or '.', starting with a letter or a digit"},
		{"activity=expireInstance&instanceId=I&orderId=" + strings.Repeat("o", 65) + base, "field orderId is longer than 64 characters"},
		{"activity=expireInstance&instanceId=I&orderId=O&testFlag=2" + base, `field testFlag must be "0" or "1"`},
		{"activity=newInstance&customerId=c&businessId=b&orderId=o&productId=p" + base, "missing field skuCode"},
		{"activity=newInstance&customerId=" + strings.Repeat("c", 101) + "&businessId=b&orderId=o&skuCode=s&productId=p" + base, "field customerId is longer than 100 characters"},
		{"activity=newInstance&customerId=c&businessId=b&orderId=o&skuCode=s&productId=p&amount=1e3" + base, "field amount must be a whole number"},
		{"activity=newInstance&customerId=c&businessId=b&orderId=o&skuCode=s&productId=p&amount=12345678" + base, "field amount is longer than 7 characters"},
		{"activity=newInstance&customerId=c&businessId=b&orderId=o&skuCode=s&productId=p&orderAmount=-1" + base, "field orderAmount must not be negative"},
		{"activity=newInstance&customerId=c&businessId=b&orderId=o&skuCode=s&productId=p&orderAmount=1.2345" + base, "field orderAmount must be an amount with at most 3 decimals"},
		{"activity=newInstance&customerId=c&businessId=b&orderId=o&skuCode=s&productId=p&expireTime=tomorrow" + base, "field expireTime must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS (UTC)"},
		{"activity=refreshInstance&orderId=R&instanceId=I" + base, "missing field expireTime"},
		{"activity=refreshInstance&orderId=R&instanceId=I&expireTime=20250101000000&trialToFormal=y" + base, `field trialToFormal must be "0" or "1"`},
		{"activity=instanceStatus&instanceId=I&instanceStatus=UNFREEZE" + base, "field instanceStatus must be FREEZE or NORMAL"},
		{"activity=queryInstance&instanceId=,," + base, "missing field instanceId"},
		{"activity=upgrade&instanceId=I&orderId=U&skuCode=s" + base, "missing field productId"},
		{"activity=releaseLicense&instanceId=I" + base, "missing field orderId"},
	} {
		params, err := url.ParseQuery(tc.query)
		require.NoError(t, err)
		req, err := ParseV1Request(params)
		require.Nil(t, req, tc.query)
		var re *RequestError
		require.ErrorAs(t, err, &re, tc.query)
		require.Equal(t, ResultInvalidParam, re.Code)
		require.Equal(t, tc.msg, re.Message, tc.query)
	}
}

// A call verified by V1Verifier parses; unknown parameters and authToken
// are ignored; V1Query gives the parameters back.
func TestV1VerifyThenParse(t *testing.T) {
	for _, q := range v1Queries {
		req := parseV1(t, q)
		params := V1Query(req)
		params.Set("somethingNew", "ignored")
		signed, err := SignedV1Query("k", params, time.Now())
		require.NoError(t, err)
		verified, err := (&V1Verifier{AccessKey: "k"}).Verify(EncodeV1Query(signed))
		require.NoError(t, err)
		again, err := ParseV1Request(verified)
		require.NoError(t, err)
		require.Equal(t, req.V1Activity(), again.V1Activity())
		// Everything but the timeStamp, which signing renews, is the same.
		reflect.ValueOf(again).Elem().FieldByName("V1Common").FieldByName("TimeStamp").SetString(
			reflect.ValueOf(req).Elem().FieldByName("V1Common").FieldByName("TimeStamp").String())
		require.Equal(t, req, again, q)
	}
}

func TestV1NewInstanceResponse(t *testing.T) {
	const key = "v1-key"
	for _, size := range []KeySize{AES256, AES128} {
		answer, err := NewV1NewInstanceResponse(key, size, "inst-1",
			AppInfo{FrontEndURL: "https://app.example.com/t/1", AdminURL: "https://app.example.com/admin", UserName: "admin", Password: "s3cret 密码", Memo: "备注"})
		require.NoError(t, err)
		require.Equal(t, EncryptTypeOf(size), answer.EncryptType)
		for field, plain := range map[string]string{answer.AppInfo.UserName: "admin", answer.AppInfo.Password: "s3cret 密码"} {
			require.NotEqual(t, plain, field)
			got, err := DecryptField(key, size, field)
			require.NoError(t, err)
			require.Equal(t, plain, got)
		}
		body, sign, err := EncodeSignedResponse(key, answer)
		require.NoError(t, err)
		require.NoError(t, VerifyBodySign(sign, key, body))
		var decoded map[string]any
		require.NoError(t, json.Unmarshal(body, &decoded))
		require.Equal(t, "000000", decoded["resultCode"])
		require.Equal(t, "inst-1", decoded["instanceId"])
		require.Equal(t, string(EncryptTypeOf(size)), decoded["encryptType"])
		require.Contains(t, string(body), `\u5907\u6ce8`, "non-ASCII is escaped as EncodeResponse does")
	}
	require.Equal(t, EncryptAES256, EncryptTypeOf(AES256))
	require.Equal(t, EncryptAES128, EncryptTypeOf(AES128))

	_, err := NewV1NewInstanceResponse("k", AES256, "", AppInfo{FrontEndURL: "u"})
	require.ErrorContains(t, err, "no instanceId")
	_, err = NewV1NewInstanceResponse("k", AES256, "i", AppInfo{})
	require.ErrorContains(t, err, "no frontEndUrl")
	_, err = NewV1NewInstanceResponse("", AES256, "i", AppInfo{FrontEndURL: "u", UserName: "x"})
	require.Error(t, err)

	// A failure answer and the License answer, signed with the V1 key.
	body, sign, err := EncodeSignedResponse(key, V1GetLicenseResponse{ResultCode: ResultSuccess, ResultMsg: "success.", License: "LIC-1", InstanceID: "I9"})
	require.NoError(t, err)
	require.Equal(t, `{"resultCode":"000000","resultMsg":"success.","license":"LIC-1","instanceId":"I9"}`, string(body))
	require.NoError(t, VerifyBodySign(sign, key, body))
	body, _, err = EncodeSignedResponse(key, V1NewInstanceResponse{ResultCode: ResultInternalError, ResultMsg: "retry later"})
	require.NoError(t, err)
	require.Equal(t, `{"resultCode":"000005","resultMsg":"retry later"}`, string(body))
	_, _, err = EncodeSignedResponse("", Response{})
	require.ErrorContains(t, err, "no access key")
}

// v1RequestErrorMessages are every message ParseV1Request may answer
// with. Field names come from the code, never from the query.
var v1RequestErrorMessages = []*regexp.Regexp{
	regexp.MustCompile(`^missing field [a-zA-Z]+$`),
	regexp.MustCompile(`^unknown activity$`),
	regexp.MustCompile(`^field [a-zA-Z]+ is repeated$`),
	regexp.MustCompile(`^field [a-zA-Z]+ is longer than [0-9]+ characters$`),
	regexp.MustCompile(`^field (testFlag|trialFlag|trialToFormal) must be "0" or "1"$`),
	regexp.MustCompile(`^field (timeStamp|expireTime) must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS \(UTC\)$`),
	regexp.MustCompile(`^field (businessId|instanceId) must be letters, digits, '-', '_' or '\.', starting with a letter or a digit$`),
	regexp.MustCompile(`^field (chargingMode|amount|diskSize|bandWidth|periodNumber|provisionType) must be a whole number$`),
	regexp.MustCompile(`^field orderAmount must be an amount with at most 3 decimals$`),
	regexp.MustCompile(`^field orderAmount must not be negative$`),
	regexp.MustCompile(`^field instanceStatus must be FREEZE or NORMAL$`),
	regexp.MustCompile(`^an instanceId in the list is longer than 64 characters$`),
	regexp.MustCompile(`^an instanceId in the list is not letters, digits, '-', '_' or '\.', starting with a letter or a digit$`),
}

// v1MessageFields finds the field a message names.
var v1MessageFields = regexp.MustCompile(`^(?:missing field|field) ([a-zA-Z]+)`)

// FuzzParseV1Request: any query gives either a typed request whose
// parameters, written back with V1Query, parse to the same request and
// keep the documented limits, or a *RequestError answered 000002 whose
// message is one of the fixed texts and names only a field the V1 requests
// read.
func FuzzParseV1Request(f *testing.F) {
	for _, q := range v1Queries {
		f.Add(q)
		f.Add(q + "&authToken=x&unknown=1")
	}
	for _, q := range []string{
		"", "activity", "activity=", "activity=%zz", "activity=upgrade&activity=upgrade",
		"activity=newInstance&timeStamp=20240101000000000",
		"activity=instanceStatus&instanceId=I&instanceStatus=freeze&timeStamp=20240101000000000",
		"activity=refreshInstance&orderId=R&instanceId=I&expireTime=20250101000000&orderAmount=-0.001&timeStamp=20240101000000000",
		"activity=queryInstance&instanceId=%20a%20,%20b%20,,a,%20&timeStamp=20240101000000000",
		"activity=newInstance&customerId=c&businessId=b&orderId=o&skuCode=s&productId=p&amount=+5&timeStamp=20240101000000000",
		"activity=newInstance&customerId=c%00&businessId=b&orderId=o%FF&skuCode=s&productId=p&timeStamp=20240101000000000",
		"activity=releaseInstance&instanceId=I&testFlag=1&testFlag=0&timeStamp=20240101000000000",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		params, _ := url.ParseQuery(query) // what parses, as a lenient caller would pass it
		req, err := ParseV1Request(params)
		if err != nil {
			require.Nil(t, req)
			requireKnownV1Refusal(t, err)
			return
		}
		require.Contains(t, V1Activities, req.V1Activity())
		requireStringsWithin(t, reflect.ValueOf(req), maxV1Text)
		again, err := ParseV1Request(V1Query(req))
		require.NoError(t, err, "written back as %v", V1Query(req))
		require.Equal(t, req, again)
	})
}

func requireKnownV1Refusal(t *testing.T, err error) {
	t.Helper()
	var re *RequestError
	require.ErrorAs(t, err, &re)
	require.Equal(t, ResultInvalidParam, re.Code)
	known := false
	for _, m := range v1RequestErrorMessages {
		known = known || m.MatchString(re.Message)
	}
	require.True(t, known, "unexpected error message %q", re.Message)
	if m := v1MessageFields.FindStringSubmatch(re.Message); m != nil {
		require.True(t, isV1Field(m[1]), "message %q names a field no V1 request reads", re.Message)
	}
}
