package koogallery

// ResultCode is the resultCode of an answer to a production-interface call
// (§3). Only ResultSuccess counts as success for the marketplace;
// ResultProcessing is accepted for newInstance and getLicenseAsync only.
type ResultCode string

// Result codes shared by every activity (§3).
const (
	ResultSuccess          ResultCode = "000000" // success
	ResultAuthFailed       ResultCode = "000001" // bad signature, stale timestamp, replayed nonce
	ResultInvalidParam     ResultCode = "000002" // malformed body, missing field, unknown activity
	ResultInstanceNotFound ResultCode = "000003" // the instanceId is not known
	ResultProcessing       ResultCode = "000004" // accepted, still being processed
	ResultInternalError    ResultCode = "000005" // the merchant failed; the marketplace retries
)

// Result codes specific to newInstance (§3).
const (
	ResultNoResource        ResultCode = "000100" // no instance resource available to allocate
	ResultMobileUnusable    ResultCode = "000101" // mobile number empty or already used
	ResultEmailUnusable     ResultCode = "000102" // e-mail empty or already used
	ResultAlreadyPurchased  ResultCode = "000103" // product already purchased
	ResultNewInstanceFailed ResultCode = "000104" // internal service error during creation
	ResultBenefitTaken      ResultCode = "000105" // account already subscribed to the benefit
	ResultSoldOut           ResultCode = "000106" // sold out
	ResultEmailDomainInUse  ResultCode = "000107" // SaaS e-mail domain duplicate
)

// Result codes of the 在线开通License getLicenseAsync activity (§3, §13.2);
// a getLicenseAsync is also answered ResultProcessing when its licence is
// issued asynchronously.
const (
	ResultLicenseQuotaShort  ResultCode = "000900" // the order's licence quota is used up
	ResultLicenseOutOfWindow ResultCode = "000901" // start or end outside the order's validity
	ResultLicenseNeedsExpiry ResultCode = "000902" // a yearly/monthly licence needs expireTime
	ResultLicenseNeedsDevice ResultCode = "000903" // a node-locked licence needs deviceFingerprint
)

// Succeeded reports whether the marketplace treats c as a success.
func (c ResultCode) Succeeded() bool { return c == ResultSuccess }

// ResultChangeRejected answers a changeInstanceCheck whose change does not
// fit. The marketplace reads any code other than 000000 as "not allowed"
// and shows resultMsg (§1.8); 000002 is used rather than 000005 so that a
// rejection is never mistaken for the merchant's own failure in metrics.
const ResultChangeRejected = ResultInvalidParam
