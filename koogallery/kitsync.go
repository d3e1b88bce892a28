package koogallery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// KitSync is one kit call's body, read (§12.4–§12.8). Which fields are
// set depends on Operation.
type KitSync struct {
	Operation KitOperation
	// InstanceID is empty when the seller applies for the app credential
	// (the marketplace's probe of the interface, §12.1); OrderID likewise.
	InstanceID, OrderID string
	// TenantID is the enterprise, the same in all five calls; never empty.
	TenantID string
	// Debug is testFlag 1 (console-debugging data).
	Debug bool
	// TimeStamp is the body's timeStamp, Beijing time, as sent.
	TimeStamp string
	// Flag is what the call does: KitFlagDelete, KitFlagAdd, KitFlagModify,
	// or (authSync only) KitFlagCancel. allOrgSync has none: 0 there, and
	// meaningless.
	Flag int

	// tenantSync: the enterprise (empty when Flag is KitFlagDelete).
	TenantCode, Name, DomainName string

	// applicationSync: the app's OAuth client. ClientSecret is still
	// encrypted (KitKeys.DecryptClientSecret); ClientID and ClientSecret are
	// empty when Flag is KitFlagDelete. AppID is also authSync's.
	AppID, ClientID, ClientSecret string

	// authSync: the users (never empty) and the sync's time
	// (yyyyMMddHHmmssSSS, Beijing time), which orders the syncs.
	Users           []KitUser
	CurrentSyncTime string

	// singleOrgSync: exactly one department; allOrgSync: the enterprise's
	// whole list, possibly empty (no departments).
	Orgs []KitOrg
}

// The values of a kit call's flag (§12.5–§12.8).
const (
	KitFlagDelete = 0
	KitFlagAdd    = 1
	KitFlagModify = 2
	// KitFlagCancel (authSync only) revokes the users' authorisation for
	// the app; they stay in the enterprise.
	KitFlagCancel = 3
)

// KitUser is one user of an authSync (§12.7). With KitFlagDelete and
// KitFlagCancel only UserName is sure to be set.
type KitUser struct {
	UserName, Name, OrgCode, Position, EmployeeCode string
	// EmployeeType is 1 regular, 2 intern, 3 dispatched, 4 outsourced; 0
	// when not sent.
	EmployeeType int
	// Role is "user" or "admin" (lower case whatever was sent); empty only
	// with KitFlagDelete and KitFlagCancel.
	Role string
	// Enabled is the user's enable; true when not sent.
	Enabled                             bool
	Mobile, Email, WorkPlace, EntryDate string
}

// KitOrg is one department (§12.8). ParentCode is empty at the top level.
type KitOrg struct {
	OrgCode, OrgName, ParentCode string
}

// The roles of an authSync user.
const (
	KitRoleUser  = "user"
	KitRoleAdmin = "admin"
)

// maxKitSecretLen bounds clientSecret's text: 512 base64 characters for
// the documented 3072-bit key, 1368 for an 8192-bit one.
const maxKitSecretLen = 4096

// kitFields are the member names the kit's bodies are read from, which an
// error message may name.
var kitFields = map[string]bool{}

func init() {
	for _, name := range strings.Fields(`instanceId orderId tenantId testFlag timeStamp flag
		tenantCode name domainName appId clientId clientSecret userList currentSyncTime
		userName orgCode position employeeCode employeeType role enable mobile email workPlace
		entryDate extension orgName parentCode orgInfoList orgInfo`) {
		kitFields[name] = true
	}
}

// ParseKitSync reads the body of a kit call for op (§12.4–§12.8), member
// names exactly as Java reads them: a body whose members repeat or differ
// only in case is refused, at any depth. Members the documentation does
// not name are ignored. The documented leniencies are accepted: testFlag
// and flag as integers or numeric strings, a user's enable as a string or
// a boolean and employeeType as an integer or a string, user fields at the
// top of the user or under its extension (the top wins), userList and
// orgInfoList as a list or a string holding one (orgInfoList even with
// unquoted member names, as documented), V1's orgInfo and name for
// orgInfoList and orgName.
//
// Every refusal is a *RequestError (ResultInvalidParam) whose message
// names the field and never echoes a value.
func ParseKitSync(op KitOperation, body []byte) (*KitSync, error) {
	if _, ok := ParseKitOperation(string(op)); !ok {
		return nil, invalid("unknown kit operation")
	}
	root, err := parseJSONObject(body)
	if err != nil {
		return nil, invalid("request body is not a JSON object")
	}
	if problem := namesProblem(root, isKitField); problem != "" {
		return nil, invalid("request body is ambiguous: %s", problem)
	}
	s := &KitSync{Operation: op}
	r := kitReader{obj: root}
	s.InstanceID = r.id("instanceId", false)
	s.OrderID = r.id("orderId", false)
	s.TenantID = r.id("tenantId", true)
	s.Debug = r.testFlag()
	s.TimeStamp = r.text("timeStamp", false)
	if op != KitAllOrgSync {
		maxFlag := KitFlagModify
		if op == KitAuthSync {
			maxFlag = KitFlagCancel
		}
		s.Flag = r.flag(maxFlag)
	}
	if r.err != nil {
		return nil, r.err
	}
	deleting := s.Flag == KitFlagDelete
	switch op {
	case KitTenantSync:
		s.TenantCode = r.id("tenantCode", !deleting)
		s.Name = r.text("name", !deleting)
		s.DomainName = r.text("domainName", !deleting)
	case KitApplicationSync:
		s.AppID = r.id("appId", true)
		s.ClientID = r.id("clientId", !deleting)
		s.ClientSecret = r.text("clientSecret", !deleting)
		if r.err == nil && len(s.ClientSecret) > maxKitSecretLen {
			r.fail(invalid("field clientSecret is longer than %d characters", maxKitSecretLen))
		}
	case KitAuthSync:
		s.AppID = r.id("appId", true)
		s.Users = r.users(deleting || s.Flag == KitFlagCancel)
		s.CurrentSyncTime = r.syncTime("currentSyncTime")
	case KitSingleOrgSync:
		org := KitOrg{
			OrgCode:    r.id("orgCode", true),
			OrgName:    r.orgName("orgName", !deleting),
			ParentCode: r.id("parentCode", false),
		}
		s.Orgs = []KitOrg{org}
	case KitAllOrgSync:
		s.Orgs = r.orgList()
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

func isKitField(name string) bool { return kitFields[name] }

// kitReader reads fields from one JSON object and keeps the first
// refusal; once it has one, every later read is a no-op. prefix names the
// object in messages ("userList[2]."); fallback is a user's extension.
type kitReader struct {
	obj      jsonValue
	fallback *jsonValue
	prefix   string
	err      *RequestError
}

func (r *kitReader) fail(err *RequestError) {
	if r.err == nil {
		r.err = err
	}
}

// value returns the member named name, or the fallback object's; a null
// member counts as absent.
func (r *kitReader) value(name string) (jsonValue, bool) {
	if v, ok := r.obj.member(name); ok && v.kind != jsonNull {
		return v, true
	}
	if r.fallback != nil {
		if v, ok := r.fallback.member(name); ok && v.kind != jsonNull {
			return v, true
		}
	}
	return jsonValue{}, false
}

// text reads a string member; required refuses it absent or blank.
func (r *kitReader) text(name string, required bool) string {
	if r.err != nil {
		return ""
	}
	v, ok := r.value(name)
	switch {
	case !ok:
	case v.kind != jsonString:
		r.fail(invalid("field %s%s must be a string", r.prefix, name))
		return ""
	case strings.TrimSpace(v.text) != "":
		return v.text
	}
	if required {
		r.fail(invalid("missing field %s%s", r.prefix, name))
	}
	return ""
}

// id reads an identifier: a string of at most 64 characters without
// control characters.
func (r *kitReader) id(name string, required bool) string {
	s := r.text(name, required)
	switch {
	case r.err != nil:
		return ""
	case utf8.RuneCountInString(s) > maxIDLen:
		r.fail(invalid("field %s%s is longer than %d characters", r.prefix, name, maxIDLen))
	case strings.ContainsFunc(s, unicode.IsControl):
		r.fail(invalid("field %s%s holds a control character", r.prefix, name))
	}
	return s
}

// integer reads an integer member sent as a JSON integer or as a string
// of digits; absent (or an empty string) is ok false.
func (r *kitReader) integer(name string) (n int, ok bool) {
	if r.err != nil {
		return 0, false
	}
	v, present := r.value(name)
	if !present || (v.kind == jsonString && strings.TrimSpace(v.text) == "") {
		return 0, false
	}
	if v.kind == jsonNumber || v.kind == jsonString {
		if n, err := strconv.Atoi(strings.TrimSpace(v.text)); err == nil && n >= 0 {
			return n, true
		}
	}
	r.fail(invalid("field %s%s must be a non-negative integer", r.prefix, name))
	return 0, false
}

// testFlag reads testFlag: 0 or 1 (a number or a string); absent is 0.
func (r *kitReader) testFlag() bool {
	n, _ := r.integer("testFlag")
	if n > 1 {
		r.fail(invalid("field testFlag must be 0 or 1"))
	}
	return n == 1
}

// flag reads the mandatory flag, 0 to max.
func (r *kitReader) flag(max int) int {
	n, ok := r.integer("flag")
	switch {
	case r.err != nil:
	case !ok:
		r.fail(invalid("missing field flag"))
	case n > max:
		r.fail(invalid("field flag must be one of %s", flagChoices(max)))
	}
	return n
}

func flagChoices(max int) string {
	var choices []string
	for i := 0; i <= max; i++ {
		choices = append(choices, strconv.Itoa(i))
	}
	return strings.Join(choices, ", ")
}

// syncTime reads a mandatory yyyyMMddHHmmssSSS time, as sent.
func (r *kitReader) syncTime(name string) string {
	s := r.text(name, true)
	if r.err == nil && (len(s) != 17 || strings.ContainsFunc(s, func(c rune) bool { return c < '0' || c > '9' })) {
		r.fail(invalid("field %s must be yyyyMMddHHmmssSSS (17 digits)", name))
	}
	return s
}

// orgName reads a department's name: orgName, or V1's name.
func (r *kitReader) orgName(name string, required bool) string {
	if s := r.text(name, false); s != "" || r.err != nil {
		return s
	}
	if s := r.text("name", false); s != "" || r.err != nil {
		return s
	}
	if required {
		r.fail(invalid("missing field %s%s", r.prefix, name))
	}
	return ""
}

// list reads a member holding a list of objects: a JSON array, or a string
// holding one (V1, and allOrgSync's documented example, whose member names
// are not even quoted). ok false means absent.
func (r *kitReader) list(name string) (items []jsonValue, ok bool) {
	if r.err != nil {
		return nil, false
	}
	v, present := r.value(name)
	if !present {
		return nil, false
	}
	if v.kind == jsonString {
		parsed, err := parseJSONText([]byte(quoteBareNames(v.text)))
		if err != nil || parsed.kind != jsonArray {
			r.fail(invalid("field %s%s is a string that does not hold a JSON list", r.prefix, name))
			return nil, false
		}
		if problem := namesProblem(parsed, isKitField); problem != "" {
			r.fail(invalid("field %s%s is ambiguous: %s", r.prefix, name, problem))
			return nil, false
		}
		v = parsed
	}
	if v.kind != jsonArray {
		r.fail(invalid("field %s%s must be a list", r.prefix, name))
		return nil, false
	}
	for i, item := range v.items {
		if item.kind != jsonObject {
			r.fail(invalid("field %s%s[%d] must be an object", r.prefix, name, i))
			return nil, false
		}
	}
	return v.items, true
}

// users reads authSync's userList. light (delete, cancel) needs only each
// user's userName.
func (r *kitReader) users(light bool) []KitUser {
	items, ok := r.list("userList")
	switch {
	case r.err != nil:
		return nil
	case !ok || len(items) == 0:
		r.fail(invalid("missing field userList"))
		return nil
	}
	users := make([]KitUser, 0, len(items))
	for i, item := range items {
		u := kitReader{obj: item, prefix: fmt.Sprintf("userList[%d].", i)}
		if ext, ok := item.member("extension"); ok && ext.kind == jsonObject {
			u.fallback = &ext
		}
		user := KitUser{
			UserName:     u.id("userName", true),
			Name:         u.text("name", !light),
			OrgCode:      u.id("orgCode", !light),
			Position:     u.text("position", false),
			EmployeeCode: u.text("employeeCode", false),
			Mobile:       u.text("mobile", false),
			Email:        u.text("email", false),
			WorkPlace:    u.text("workPlace", false),
			EntryDate:    u.text("entryDate", false),
			Enabled:      u.enable(),
		}
		user.EmployeeType, _ = u.integer("employeeType")
		user.Role = u.role(!light)
		if u.err != nil {
			r.fail(u.err)
			return nil
		}
		users = append(users, user)
	}
	return users
}

// role reads a user's role, "user" or "admin" in any case.
func (r *kitReader) role(required bool) string {
	s := strings.ToLower(strings.TrimSpace(r.text("role", required)))
	if r.err == nil && s != "" && s != KitRoleUser && s != KitRoleAdmin {
		r.fail(invalid("field %srole must be user or admin", r.prefix))
	}
	return s
}

// enable reads a user's enable: "true"/"false" in any case, or a JSON
// boolean; absent means enabled (the user was authorised).
func (r *kitReader) enable() bool {
	if r.err != nil {
		return false
	}
	v, ok := r.value("enable")
	if !ok {
		return true
	}
	if v.kind == jsonBool || v.kind == jsonString {
		switch strings.ToLower(strings.TrimSpace(v.text)) {
		case "true":
			return true
		case "false":
			return false
		case "":
			return true
		}
	}
	r.fail(invalid("field %senable must be \"true\" or \"false\"", r.prefix))
	return false
}

// orgList reads allOrgSync's orgInfoList (or V1's orgInfo): possibly
// empty, every department with its orgCode.
func (r *kitReader) orgList() []KitOrg {
	name := "orgInfoList"
	_, current := r.value(name)
	if _, v1 := r.value("orgInfo"); v1 {
		if current {
			r.fail(invalid("fields orgInfoList and orgInfo are both given"))
			return nil
		}
		name = "orgInfo"
	}
	items, ok := r.list(name)
	switch {
	case r.err != nil:
		return nil
	case !ok:
		r.fail(invalid("missing field orgInfoList"))
		return nil
	}
	orgs := make([]KitOrg, 0, len(items))
	for i, item := range items {
		o := kitReader{obj: item, prefix: fmt.Sprintf("%s[%d].", name, i)}
		org := KitOrg{OrgCode: o.id("orgCode", true), OrgName: o.orgName("orgName", false), ParentCode: o.id("parentCode", false)}
		if o.err != nil {
			r.fail(o.err)
			return nil
		}
		orgs = append(orgs, org)
	}
	return orgs
}

// parseJSONText reads b as exactly one JSON value of valid UTF-8.
func parseJSONText(b []byte) (jsonValue, error) {
	if !utf8.Valid(b) {
		return jsonValue{}, fmt.Errorf("%w: not valid UTF-8", ErrNotCanonicalisable)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return jsonValue{}, err
	}
	v, err := readJSONValue(dec, tok, 1)
	if err != nil {
		return jsonValue{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jsonValue{}, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

// quoteBareNames turns JavaScript-style object literals with unquoted
// member names, as allOrgSync's documented example writes orgInfoList
// ([{orgCode:"00000001", orgName:"产品部"}]), into JSON: an identifier
// outside a string that follows '{' or ',' and precedes ':' is quoted.
// Strict JSON passes through unchanged.
func quoteBareNames(s string) string {
	var out strings.Builder
	out.Grow(len(s) + 16)
	prev := byte(0) // the last byte written outside strings and blanks
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			end := i + 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			end = min(end+1, len(s))
			out.WriteString(s[i:end])
			i, prev = end, '"'
		case (prev == '{' || prev == ',') && isNameStart(c):
			end := i
			for end < len(s) && (isNameStart(s[end]) || '0' <= s[end] && s[end] <= '9') {
				end++
			}
			next := end
			for next < len(s) && strings.IndexByte(" \t\r\n", s[next]) >= 0 {
				next++
			}
			if next < len(s) && s[next] == ':' {
				out.WriteString(strconv.Quote(s[i:end]))
			} else {
				out.WriteString(s[i:end])
			}
			i, prev = end, 'a'
		default:
			out.WriteByte(c)
			if strings.IndexByte(" \t\r\n", c) < 0 {
				prev = c
			}
			i++
		}
	}
	return out.String()
}

func isNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '$'
}
