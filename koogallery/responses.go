package koogallery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Response is the answer to every activity except newInstance and
// queryInstance (§1.4–§1.9), and the error answer of those two.
type Response struct {
	ResultCode ResultCode `json:"resultCode"`
	ResultMsg  string     `json:"resultMsg"`
}

// NewInstanceResponse answers newInstance (§1.2).
type NewInstanceResponse struct {
	ResultCode ResultCode `json:"resultCode"`
	ResultMsg  string     `json:"resultMsg"`
	InstanceID string     `json:"instanceId,omitempty"`
}

// QueryInstanceResponse answers queryInstance (§1.3).
type QueryInstanceResponse struct {
	ResultCode ResultCode     `json:"resultCode"`
	ResultMsg  string         `json:"resultMsg"`
	Info       []InstanceInfo `json:"info"`
}

// InstanceInfo is one instance in a queryInstance answer.
type InstanceInfo struct {
	InstanceID string      `json:"instanceId"`
	AppInfo    *AppInfo    `json:"appInfo,omitempty"`
	UsageInfo  []UsageInfo `json:"usageInfo,omitempty"`
}

// AppInfo is the access information shown to the buyer. UserName and
// Password are sent encrypted (§2.6) unless the merchant configures
// otherwise (§7.3).
type AppInfo struct {
	FrontEndURL string `json:"frontEndUrl"`
	AdminURL    string `json:"adminUrl,omitempty"`
	UserName    string `json:"userName,omitempty"`
	Password    string `json:"password,omitempty"`
	Memo        string `json:"memo,omitempty"`
}

// UsageInfo is cumulative usage of a pay-per-use instance, or the amount
// consumed of one fee item of a package (§1.3).
type UsageInfo struct {
	RelatedInstanceID string  `json:"relatedInstanceId,omitempty"`
	UsageValue        float64 `json:"usageValue"`
	StatisticalTime   string  `json:"statisticalTime"` // yyyyMMddHHmmssSSS UTC
	DashboardURL      string  `json:"dashboardUrl,omitempty"`
}

// EncodeResponse serialises an answer exactly once, the way it must be both
// signed (Body-Sign) and sent: compact JSON, HTML characters unescaped, and
// every non-ASCII character written as a \uXXXX escape, which the FAQ
// requires for Chinese text in memo.
func EncodeResponse(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return EscapeNonASCII(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

// EscapeNonASCII rewrites every non-ASCII character of a JSON document as a
// \uXXXX escape (a surrogate pair above U+FFFF). Non-ASCII bytes can only
// occur inside JSON strings, where the escape means the same character.
func EscapeNonASCII(doc []byte) []byte {
	out := make([]byte, 0, len(doc))
	for i := 0; i < len(doc); {
		c := doc[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(doc[i:])
		i += size
		if r > 0xFFFF {
			r -= 0x10000
			out = fmt.Appendf(out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			continue
		}
		out = fmt.Appendf(out, `\u%04x`, r)
	}
	return out
}
