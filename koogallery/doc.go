// Package koogallery is the Huawei Cloud KooGallery (云商店) SaaS 2.0 protocol:
// the typed callbacks the marketplace sends to a merchant's production
// interface, their result codes, the request signature (HMAC-SHA256 over the
// raw body), the Body-Sign response header, the AES-CBC field encryption with
// the SHA1PRNG-derived key, and a client for the marketplace's open API.
//
// The package knows nothing of Temporal, databases or HTTP frameworks; it is
// the contract of ../shared/koogallery/SPEC.md written as Go. Section numbers
// in comments (§2.2, §7.5, ...) refer to that file.
package koogallery
