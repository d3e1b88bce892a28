// Package koogallery is the Huawei Cloud KooGallery (云商店) SaaS 2.0 protocol:
// the typed callbacks the marketplace sends to a merchant's production
// interface, their result codes, the request signature (HMAC-SHA256 over the
// raw body or its canonical form), the exact reading of a body (member names
// as Java reads them), the Body-Sign response header, the AES-CBC field encryption with
// the SHA1PRNG-derived key, a client for the marketplace's open API (Query
// Order, the usage push, the licence upload of online licence products) and
// a verifier of its gateway's AK/SK signatures; and the withdrawn V1.0 GET
// interface: its authToken (V1Verifier) and its activities, the old
// 联营License ones included (ParseV1Request), kept apart from the V2 ones.
//
// The package knows nothing of Temporal, databases or HTTP frameworks; it is
// the marketplace contract of docs/contract.md written as Go. Section
// numbers in the comments of this package (§2.2, §7.5, ...) refer to the
// sections of docs/contract.md.
package koogallery
