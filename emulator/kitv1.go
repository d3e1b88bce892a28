package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// A V1 listing's kit (contract §12.10): the same syncs on the sub-paths
// without /v2, with the V1 shapes and an authToken header made with the V1
// key over the body.

// v1KitRequest is a kit call of a V1 listing, signed as the marketplace
// signs it; key is what the answer's Body-Sign is checked with.
func (a *Activities) v1KitRequest(ctx context.Context, op koogallery.KitOperation, in CallInput) (*http.Request, string, error) {
	if a.V1AccessKey == "" {
		return nil, "", errors.New("no V1 key: set KOOGALLERY_V1_ACCESS_KEY")
	}
	body, err := v1KitBody([]byte(in.Body))
	if err != nil {
		return nil, "", err
	}
	token, err := koogallery.SignV1Kit(a.V1AccessKey, body)
	if err != nil {
		return nil, "", fmt.Errorf("sign the call: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v1KitURL(a.ProductionURL, op), bytes.NewReader(body))
	if err != nil {
		return nil, "", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set(koogallery.HeaderV1KitAuthToken, token)
	req.Header.Set("Content-Type", "application/json")
	return req, a.V1AccessKey, nil
}

// v1KitBody rewrites a kit body in the V1 shapes: userList as a string
// holding the JSON list, allOrgSync's departments as orgInfo, a string
// holding a JSON list, with each department's name as name.
func v1KitBody(v2 []byte) ([]byte, error) {
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(v2))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("read the call: %w", err)
	}
	if users, ok := body["userList"]; ok {
		if _, text := users.(string); !text {
			body["userList"] = mustJSON(users)
		}
	}
	if orgs, ok := body["orgInfoList"].(string); ok {
		var list []KitOrgView
		if err := json.Unmarshal([]byte(quoteOrgNames(orgs)), &list); err != nil {
			return nil, fmt.Errorf("read the departments: %w", err)
		}
		v1 := make([]map[string]string, 0, len(list))
		for _, o := range list {
			v1 = append(v1, map[string]string{"orgCode": o.OrgCode, "name": o.OrgName, "parentCode": o.ParentCode})
		}
		delete(body, "orgInfoList")
		body["orgInfo"] = mustJSON(v1)
	}
	return json.Marshal(body)
}

// quoteOrgNames quotes the member names of the documented orgInfoList
// form ({orgCode:"D1", orgName:"…", parentCode:"" }), which this emulator
// writes itself (documentedOrgList).
func quoteOrgNames(s string) string {
	for _, name := range []string{"orgCode", "orgName", "parentCode"} {
		s = strings.ReplaceAll(s, name+":", `"`+name+`":`)
	}
	return s
}

// v1KitURL is the V1 kit's sub-path under the production address.
func v1KitURL(productionURL string, op koogallery.KitOperation) string {
	return underProductionURL(productionURL, "/produceAPI/"+string(op))
}
