// testdata/kit-oaep-key.pem is a throwaway 3072-bit test key.
// testdata/kit-oaep-fixed.json holds ciphertexts Java 17 made once under it;
// testdata/kit-oaep-vectors.json those testdata/KitOaepVectorGen.java makes
// (make vectors; OAEP is randomised, so every run differs).

package koogallery

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

type kitOAEPVector struct {
	Transformation string `json:"transformation"`
	Hash           string `json:"hash"`
	MGFHash        string `json:"mgfHash"`
	Plaintext      string `json:"plaintext"`
	Ciphertext     string `json:"ciphertext"`
}

func kitOAEPVectors(t *testing.T) []kitOAEPVector {
	t.Helper()
	var fixed struct {
		Plaintext string          `json:"plaintext"`
		Vectors   []kitOAEPVector `json:"vectors"`
	}
	b, err := os.ReadFile("testdata/kit-oaep-fixed.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &fixed))
	var generated []kitOAEPVector
	b, err = os.ReadFile("testdata/kit-oaep-vectors.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &generated))
	require.Len(t, fixed.Vectors, 3)
	require.NotEmpty(t, generated)
	for i := range fixed.Vectors {
		fixed.Vectors[i].Plaintext = fixed.Plaintext
	}
	return append(fixed.Vectors, generated...)
}

func testKitKeys(t *testing.T) *KitKeys {
	t.Helper()
	keys, err := LoadKitKeys([]string{"testdata/kit-oaep-key.pem"})
	require.NoError(t, err)
	return keys
}

// secondKitKey is a fresh 3072-bit key pair, made once (it takes a moment).
var secondKitKey = sync.OnceValues(func() ([]byte, []byte) {
	priv, pub, err := GenerateKitKey(3072)
	if err != nil {
		panic(err)
	}
	return priv, pub
})

func TestDecryptClientSecretJavaVectors(t *testing.T) {
	keys := testKitKeys(t)
	for _, v := range kitOAEPVectors(t) {
		secret, with, err := keys.DecryptClientSecret(v.Ciphertext)
		require.NoError(t, err, v.Transformation)
		require.Equal(t, v.Plaintext, secret)
		require.Equal(t, "kit-oaep-key.pem, OAEP "+v.Hash+"/MGF1-"+v.MGFHash, with, v.Transformation)
	}
}

func TestDecryptClientSecretEncodings(t *testing.T) {
	keys := testKitKeys(t)
	v := kitOAEPVectors(t)[0]
	ct, err := base64.StdEncoding.DecodeString(v.Ciphertext)
	require.NoError(t, err)
	for name, text := range map[string]string{
		"standard":          v.Ciphertext,
		"standard, no pad":  base64.RawStdEncoding.EncodeToString(ct),
		"URL-safe":          base64.URLEncoding.EncodeToString(ct),
		"URL-safe, no pad":  base64.RawURLEncoding.EncodeToString(ct),
		"hex":               hex.EncodeToString(ct),
		"HEX":               strings.ToUpper(hex.EncodeToString(ct)),
		"MIME line breaks":  strings.Join(splitEvery(v.Ciphertext, 76), "\r\n"),
		"surrounded blanks": "  " + v.Ciphertext + "\n",
	} {
		secret, _, err := keys.DecryptClientSecret(text)
		require.NoError(t, err, name)
		require.Equal(t, v.Plaintext, secret, name)
	}
}

func splitEvery(s string, n int) []string {
	var out []string
	for len(s) > n {
		out, s = append(out, s[:n]), s[n:]
	}
	return append(out, s)
}

func TestDecryptClientSecretRotation(t *testing.T) {
	privPEM, pubPEM := secondKitKey()
	pub, err := ParseKitPublicKey(pubPEM)
	require.NoError(t, err)
	ct, err := EncryptClientSecret(pub, "rotated-secret")
	require.NoError(t, err)
	fixed, err := os.ReadFile("testdata/kit-oaep-key.pem")
	require.NoError(t, err)

	keys, err := ParseKitKeys([]string{"old.pem", "new.pem"}, [][]byte{fixed, privPEM})
	require.NoError(t, err)
	require.Equal(t, []string{"old.pem", "new.pem"}, keys.Names())
	secret, with, err := keys.DecryptClientSecret(ct)
	require.NoError(t, err)
	require.Equal(t, "rotated-secret", secret)
	require.Equal(t, "new.pem, OAEP SHA-256/MGF1-SHA-1", with)

	// Only the key that was not used: every variant fails, the message
	// says what was tried and never holds the ciphertext.
	only, err := ParseKitKeys([]string{"old.pem"}, [][]byte{fixed})
	require.NoError(t, err)
	_, _, err = only.DecryptClientSecret(ct)
	require.ErrorIs(t, err, ErrClientSecretUndecryptable)
	require.EqualError(t, err, "clientSecret cannot be decrypted with any of the 1 private keys (tried OAEP SHA-256/MGF1-SHA-1, SHA-1/MGF1-SHA-1, SHA-256/MGF1-SHA-256)")
}

func TestDecryptClientSecretRefusals(t *testing.T) {
	keys := testKitKeys(t)
	v := kitOAEPVectors(t)[0]
	ct, err := base64.StdEncoding.DecodeString(v.Ciphertext)
	require.NoError(t, err)
	tampered := append([]byte(nil), ct...)
	tampered[100] ^= 1
	for name, text := range map[string]string{
		"empty":     "",
		"garbage":   "not a ciphertext!",
		"truncated": v.Ciphertext[:len(v.Ciphertext)-8],
		"too long":  base64.StdEncoding.EncodeToString(append(ct, 0)),
		"short":     base64.StdEncoding.EncodeToString(ct[:256]),
		"tampered":  base64.StdEncoding.EncodeToString(tampered),
		"zeros":     base64.StdEncoding.EncodeToString(make([]byte, len(ct))),
	} {
		secret, with, err := keys.DecryptClientSecret(text)
		require.ErrorIs(t, err, ErrClientSecretUndecryptable, name)
		require.Empty(t, secret, name)
		require.Empty(t, with, name)
		if len(text) > 20 {
			require.NotContains(t, err.Error(), text[:20], name)
		}
	}
	_, _, err = (*KitKeys)(nil).DecryptClientSecret(v.Ciphertext)
	require.ErrorIs(t, err, ErrClientSecretUndecryptable)
	_, _, err = keys.DecryptClientSecret(base64.StdEncoding.EncodeToString(ct[:256]))
	require.ErrorContains(t, err, "decodes to 256 bytes; the private keys need 384")
}

func TestLoadKitKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, b, 0o600))
		return path
	}
	fixed, err := os.ReadFile("testdata/kit-oaep-key.pem")
	require.NoError(t, err)
	block, _ := pem.Decode(fixed)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	require.NoError(t, err)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))})

	keys, err := LoadKitKeys([]string{write("pkcs1.pem", pkcs1), write("pkcs8.pem", fixed)})
	require.NoError(t, err)
	require.Equal(t, []string{"pkcs1.pem", "pkcs8.pem"}, keys.Names())
	_, with, err := keys.DecryptClientSecret(kitOAEPVectors(t)[0].Ciphertext)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(with, "pkcs1.pem, "), with)

	small, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	smallDER, err := x509.MarshalPKCS8PrivateKey(small)
	require.NoError(t, err)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	require.NoError(t, err)
	for _, tc := range []struct {
		name, file, message string
		content             []byte
	}{
		{"small", "small.pem", "small.pem: the RSA key has 2048 bits; the marketplace requires at least 3072",
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER})},
		{"not RSA", "ec.pem", "ec.pem: the key is *ecdsa.PrivateKey, not RSA", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})},
		{"public key", "pub.pem", `pub.pem: no "PRIVATE KEY" or "RSA PRIVATE KEY" PEM block`, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")},
		{"not PEM", "junk.pem", "junk.pem: no", []byte("junk")},
		{"encrypted", "enc.pem", "enc.pem: the key is encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})},
		{"broken", "broken.pem", "broken.pem: unreadable PRIVATE KEY block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})},
	} {
		_, err := LoadKitKeys([]string{write(tc.file, tc.content)})
		require.ErrorContains(t, err, tc.message, tc.name)
	}
	_, err = LoadKitKeys([]string{filepath.Join(dir, "absent.pem")})
	require.ErrorContains(t, err, "absent.pem")
	_, err = LoadKitKeys(nil)
	require.ErrorContains(t, err, "none given")
}

func TestGenerateKitKey(t *testing.T) {
	privPEM, pubPEM := secondKitKey()
	require.Contains(t, string(privPEM), "-----BEGIN PRIVATE KEY-----")
	require.Contains(t, string(pubPEM), "-----BEGIN PUBLIC KEY-----")

	dir := t.TempDir()
	path := filepath.Join(dir, "kit-public.pem")
	require.NoError(t, os.WriteFile(path, pubPEM, 0o644))
	pub, err := LoadKitPublicKey(path)
	require.NoError(t, err)
	require.Equal(t, 3072, pub.N.BitLen())

	// The bare base64 of the PKIX key reads too.
	block, _ := pem.Decode(pubPEM)
	bare, err := ParseKitPublicKey([]byte(base64.StdEncoding.EncodeToString(block.Bytes)))
	require.NoError(t, err)
	require.True(t, pub.Equal(bare))

	_, _, err = GenerateKitKey(2048)
	require.ErrorContains(t, err, "at least 3072")
	_, err = ParseKitPublicKey(privPEM)
	require.ErrorContains(t, err, `"PRIVATE KEY" PEM block`)
	_, err = LoadKitPublicKey(filepath.Join(dir, "absent.pem"))
	require.Error(t, err)
}
