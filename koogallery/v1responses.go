package koogallery

import (
	"errors"
	"fmt"
)

// EncryptType says how a V1 newInstance answer's appInfo userName and
// password are encrypted (§1.12, §2.6). It is sent as a string; the pages
// give only the values.
type EncryptType string

// The documented encryptType values; absent means EncryptAES256.
const (
	EncryptAES256 EncryptType = "1" // AES-256-CBC/PKCS5Padding
	EncryptAES128 EncryptType = "2" // AES-128-CBC/PKCS5Padding
)

// EncryptTypeOf is the encryptType of a key size.
func EncryptTypeOf(size KeySize) EncryptType {
	if size == AES128 {
		return EncryptAES128
	}
	return EncryptAES256
}

// V1NewInstanceResponse answers a V1 newInstance (§1.12). Unlike V2,
// where the buyer's access information is polled with queryInstance, it
// travels in this answer: AppInfo with UserName and Password encrypted
// under the V1 key as EncryptType says. A failure answer has only
// ResultCode and ResultMsg (and InstanceID if one is known).
type V1NewInstanceResponse struct {
	ResultCode  ResultCode  `json:"resultCode"`
	ResultMsg   string      `json:"resultMsg"`
	InstanceID  string      `json:"instanceId,omitempty"`
	EncryptType EncryptType `json:"encryptType,omitempty"`
	AppInfo     *AppInfo    `json:"appInfo,omitempty"`
}

// NewV1NewInstanceResponse builds a successful V1 newInstance answer:
// info's UserName and Password, given in clear, are encrypted with the V1
// key (EncryptField) and EncryptType set to match; empty ones stay empty.
// The V1 pages require both encrypted, so there is no clear option.
func NewV1NewInstanceResponse(v1Key string, size KeySize, instanceID string, info AppInfo) (V1NewInstanceResponse, error) {
	if instanceID == "" {
		return V1NewInstanceResponse{}, errors.New("V1 newInstance answer: no instanceId")
	}
	if info.FrontEndURL == "" {
		// The FAQ: the answer must carry instanceId and frontEndUrl.
		return V1NewInstanceResponse{}, errors.New("V1 newInstance answer: no frontEndUrl")
	}
	for _, field := range []*string{&info.UserName, &info.Password} {
		if *field == "" {
			continue
		}
		encrypted, err := EncryptField(v1Key, size, *field)
		if err != nil {
			return V1NewInstanceResponse{}, fmt.Errorf("V1 newInstance answer: %w", err)
		}
		*field = encrypted
	}
	return V1NewInstanceResponse{
		ResultCode:  ResultSuccess,
		ResultMsg:   "success",
		InstanceID:  instanceID,
		EncryptType: EncryptTypeOf(size),
		AppInfo:     &info,
	}, nil
}

// V1GetLicenseResponse answers a 联营License getLicense (§1.11): the
// licence the buyer receives and the instance it belongs to, the same for
// every request of one order.
type V1GetLicenseResponse struct {
	ResultCode ResultCode `json:"resultCode"`
	ResultMsg  string     `json:"resultMsg"`
	License    string     `json:"license,omitempty"`
	InstanceID string     `json:"instanceId,omitempty"`
}

// EncodeSignedResponse serialises an answer once (EncodeResponse) and
// returns the bytes to send with their Body-Sign header value. For V1 and
// the 联营License the key is the V1 key alone, not key + timeStamp (§2.5).
// The other V1 activities answer with Response, queryInstance with
// QueryInstanceResponse.
func EncodeSignedResponse(accessKey string, answer any) (body []byte, bodySign string, err error) {
	if accessKey == "" {
		return nil, "", errors.New("sign answer: no access key")
	}
	body, err = EncodeResponse(answer)
	if err != nil {
		return nil, "", err
	}
	return body, BodySign(accessKey, body), nil
}
