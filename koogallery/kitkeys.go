package koogallery

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// The kit's applicationSync sends the app's clientSecret encrypted with
// the merchant's RSA public key, OAEP, key of at least 3072 bits (§12.6).
// Neither the OAEP hashes nor the ciphertext's text encoding are
// documented, so the decrypter tries what a Java marketplace would send,
// with every private key the merchant still holds (the public key of a
// credential may be replaced).

// MinKitKeyBits is the smallest RSA key the kit accepts (§12.6).
const MinKitKeyBits = 3072

// ErrClientSecretUndecryptable means no private key and OAEP variant
// decrypts an applicationSync's clientSecret (answer 000005 saying so,
// §12.6). Errors wrapping it never contain the ciphertext.
var ErrClientSecretUndecryptable = errors.New("clientSecret cannot be decrypted")

// oaepVariant is one set of OAEP parameters Java may use.
type oaepVariant struct {
	name string
	opts rsa.OAEPOptions
}

// oaepVariants are tried in this order (§12.6): Java's
// OAEPWithSHA-256AndMGF1Padding (SHA-256, but MGF1 over SHA-1), Java's
// OAEPPadding and OAEPWithSHA-1AndMGF1Padding, then SHA-256 throughout.
var oaepVariants = []oaepVariant{
	{"OAEP SHA-256/MGF1-SHA-1", rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1}},
	{"OAEP SHA-1/MGF1-SHA-1", rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}},
	{"OAEP SHA-256/MGF1-SHA-256", rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA256}},
}

// KitKeys are the merchant's RSA private keys for the kit's clientSecret,
// in the order they are tried: the current key first, then older ones
// kept while the marketplace may still use their public keys.
type KitKeys struct {
	keys []namedKitKey
}

type namedKitKey struct {
	name string
	key  *rsa.PrivateKey
}

// LoadKitKeys reads the private keys from PEM files (PKCS#8 "PRIVATE KEY"
// or PKCS#1 "RSA PRIVATE KEY", unencrypted), each named by its file's base
// name. A key that is not RSA or has fewer than MinKitKeyBits bits is
// refused; errors name the file, never the key material.
func LoadKitKeys(paths []string) (*KitKeys, error) {
	names := make([]string, len(paths))
	pems := make([][]byte, len(paths))
	for i, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("kit private key %s: %w", path, err)
		}
		names[i], pems[i] = filepath.Base(path), b
	}
	return ParseKitKeys(names, pems)
}

// ParseKitKeys is LoadKitKeys over PEM texts, each with the name that
// DecryptClientSecret reports.
func ParseKitKeys(names []string, pems [][]byte) (*KitKeys, error) {
	if len(names) != len(pems) {
		return nil, errors.New("kit private keys: as many names as keys are needed")
	}
	if len(pems) == 0 {
		return nil, errors.New("kit private keys: none given")
	}
	k := &KitKeys{}
	for i, text := range pems {
		key, err := parseKitPrivateKey(text)
		if err != nil {
			return nil, fmt.Errorf("kit private key %s: %w", names[i], err)
		}
		k.keys = append(k.keys, namedKitKey{name: names[i], key: key})
	}
	return k, nil
}

func parseKitPrivateKey(text []byte) (*rsa.PrivateKey, error) {
	for rest := text; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New(`no "PRIVATE KEY" or "RSA PRIVATE KEY" PEM block`)
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			if _, encrypted := block.Headers["DEK-Info"]; encrypted {
				return nil, errors.New("the key is encrypted; give it unencrypted (openssl pkey -in FILE -out FILE.pem)")
			}
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted; give it unencrypted (openssl pkey -in FILE -out FILE.pem)")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("unreadable %s block: %w", block.Type, err)
		}
		rsaKey, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the key is %T, not RSA", key)
		}
		if bits := rsaKey.N.BitLen(); bits < MinKitKeyBits {
			return nil, fmt.Errorf("the RSA key has %d bits; the marketplace requires at least %d", bits, MinKitKeyBits)
		}
		return rsaKey, nil
	}
}

// Names are the keys' names, in the order they are tried.
func (k *KitKeys) Names() []string {
	names := make([]string, len(k.keys))
	for i, key := range k.keys {
		names[i] = key.name
	}
	return names
}

// DecryptClientSecret decrypts an applicationSync's clientSecret: the
// ciphertext as base64 (standard, then URL-safe, padded or not) or else
// hex, of exactly the key's modulus size (384 bytes for 3072 bits); every
// key, first to last, with each OAEP variant in turn. decryptedWith names
// the key and the variant that worked ("kit.pem, OAEP SHA-256/MGF1-SHA-1"),
// for the record: it shows what the marketplace really sends. A failure
// wraps ErrClientSecretUndecryptable and says what was tried.
func (k *KitKeys) DecryptClientSecret(ciphertext string) (secret string, decryptedWith string, err error) {
	if k == nil || len(k.keys) == 0 {
		return "", "", fmt.Errorf("%w: no kit private key is configured", ErrClientSecretUndecryptable)
	}
	candidates := decodeCiphertext(ciphertext)
	if len(candidates) == 0 {
		return "", "", fmt.Errorf("%w: it is neither base64 nor hex", ErrClientSecretUndecryptable)
	}
	tried := 0
	for _, nk := range k.keys {
		ct := ciphertextOfSize(candidates, nk.key.Size())
		if ct == nil {
			continue
		}
		tried++
		for _, v := range oaepVariants {
			plain, err := nk.key.Decrypt(nil, ct, &v.opts)
			if err != nil {
				continue
			}
			if !utf8.Valid(plain) {
				return "", "", fmt.Errorf("%w: %s with %s gives bytes that are not UTF-8 text", ErrClientSecretUndecryptable, nk.name, v.name)
			}
			return string(plain), nk.name + ", " + v.name, nil
		}
	}
	if tried == 0 {
		var sizes []string
		for _, nk := range k.keys {
			sizes = append(sizes, fmt.Sprint(nk.key.Size()))
		}
		return "", "", fmt.Errorf("%w: it decodes to %d bytes; the private keys need %s (their modulus size)",
			ErrClientSecretUndecryptable, len(candidates[0]), strings.Join(sizes, " or "))
	}
	variants := make([]string, len(oaepVariants))
	for i, v := range oaepVariants {
		variants[i] = strings.TrimPrefix(v.name, "OAEP ")
	}
	return "", "", fmt.Errorf("%w with any of the %d private keys (tried OAEP %s)",
		ErrClientSecretUndecryptable, len(k.keys), strings.Join(variants, ", "))
}

// decodeCiphertext returns every reading of s as bytes, in order of
// preference: base64 standard, unpadded, URL-safe, URL-safe unpadded, then
// hex. Hex text is valid base64 too, so the size of the key decides
// (ciphertextOfSize). Blanks and line breaks (MIME base64) are ignored.
func decodeCiphertext(s string) [][]byte {
	s = strings.Join(strings.Fields(s), "")
	if s == "" {
		return nil
	}
	var out [][]byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			out = append(out, b)
		}
	}
	if b, err := hex.DecodeString(s); err == nil {
		out = append(out, b)
	}
	return out
}

func ciphertextOfSize(candidates [][]byte, size int) []byte {
	for _, c := range candidates {
		if len(c) == size {
			return c
		}
	}
	return nil
}

// EncryptClientSecret encrypts secret as the marketplace sends a
// clientSecret, for the emulator and tests: RSA-OAEP with SHA-256 and
// MGF1-SHA-1 (Java's RSA/ECB/OAEPWithSHA-256AndMGF1Padding), standard
// base64.
func EncryptClientSecret(pub *rsa.PublicKey, secret string) (string, error) {
	ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, []byte(secret), &oaepVariants[0].opts)
	if err != nil {
		return "", fmt.Errorf("encrypt clientSecret: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// GenerateKitKey makes the merchant's key pair for the app credential
// (§12.6): the private key as PKCS#8 PEM ("PRIVATE KEY"), which
// LoadKitKeys reads, and the public key as PKIX PEM ("PUBLIC KEY"), to
// upload with the credential application. bits below MinKitKeyBits are
// refused.
func GenerateKitKey(bits int) (privatePEM, publicPEM []byte, err error) {
	if bits < MinKitKeyBits {
		return nil, nil, fmt.Errorf("generate kit key: %d bits; the marketplace requires at least %d", bits, MinKitKeyBits)
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, nil, fmt.Errorf("generate kit key: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate kit key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("generate kit key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), nil
}

// LoadKitPublicKey reads a merchant's kit public key from a file
// (ParseKitPublicKey).
func LoadKitPublicKey(path string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kit public key %s: %w", path, err)
	}
	pub, err := ParseKitPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("kit public key %s: %w", filepath.Base(path), err)
	}
	return pub, nil
}

// ParseKitPublicKey reads an RSA public key of at least MinKitKeyBits
// bits: PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS#1), or the PKIX
// key's bare base64, as consoles often show it.
func ParseKitPublicKey(text []byte) (*rsa.PublicKey, error) {
	var key any
	var err error
	if block, _ := pem.Decode(text); block != nil {
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		default:
			return nil, fmt.Errorf(`a %q PEM block, not "PUBLIC KEY" or "RSA PUBLIC KEY"`, block.Type)
		}
	} else {
		der, derr := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(text)), ""))
		if derr != nil {
			return nil, errors.New(`neither a "PUBLIC KEY" PEM block nor base64`)
		}
		key, err = x509.ParsePKIXPublicKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("unreadable public key: %w", err)
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the key is %T, not RSA", key)
	}
	if bits := pub.N.BitLen(); bits < MinKitKeyBits {
		return nil, fmt.Errorf("the RSA key has %d bits; the marketplace requires at least %d", bits, MinKitKeyBits)
	}
	return pub, nil
}
