package koogallery

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// KeySize selects AES-128 or AES-256 for the sensitive-field encryption
// (§2.6). V1 announces it in the response's encryptType: 1 is AES256 (the
// default), 2 is AES128.
type KeySize int

// The two key sizes the official util supports, in bits.
const (
	AES128 KeySize = 128
	AES256 KeySize = 256
)

func (s KeySize) valid() bool { return s == AES128 || s == AES256 }

// fieldIVLen is the length of the ASCII IV that prefixes an encrypted field.
const fieldIVLen = aes.BlockSize

// ivAlphabet is what the official util draws IV characters from.
const ivAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// ErrMalformedField means an encrypted field could not be decrypted: too
// short, a non-ASCII IV, bad base64, a ciphertext that is not whole blocks,
// bad padding (usually the wrong key or key size), or a plaintext that is
// not UTF-8. DecryptField wraps it.
var ErrMalformedField = errors.New("malformed encrypted field")

// DeriveFieldKey returns the AES key the official Java util derives from an
// access key (§2.6): the first size/8 bytes of Sun's SHA1PRNG seeded with
// the key's UTF-8 bytes, which is what KeyGenerator("AES") draws. The key
// bytes are not the AES key themselves, and a plain hash of them is not
// either, so any other derivation fails against the marketplace. It returns
// nil for a size other than AES128 and AES256.
//
// The official util turns the key into bytes with the JVM's default
// charset; this is UTF-8, which is what that charset is on Java 18+ and on
// UTF-8 Linux locales. The two differ only for non-ASCII keys.
func DeriveFieldKey(accessKey string, size KeySize) []byte {
	if !size.valid() {
		return nil
	}
	return bytes.Clone(fieldKey(accessKey, size)) // the cached copy must stay intact
}

type fieldKeyID struct {
	accessKey string
	size      KeySize
}

// fieldKeys caches derived keys per (access key, size): a server uses one
// or two keys for its lifetime, and this saves the SHA-1 rounds on every
// field. The values are never modified.
var fieldKeys sync.Map // fieldKeyID → []byte

func fieldKey(accessKey string, size KeySize) []byte {
	id := fieldKeyID{accessKey, size}
	if k, ok := fieldKeys.Load(id); ok {
		return k.([]byte)
	}
	k, _ := fieldKeys.LoadOrStore(id, sha1PRNG([]byte(accessKey), int(size)/8))
	return k.([]byte)
}

// sha1PRNG returns the first n bytes of Sun's SHA1PRNG after setSeed(seed)
// on a fresh instance, drawn in one nextBytes call (as KeyGenerator does):
// state = SHA1(seed); each output block is SHA1(state), after which the
// state is updated from that block.
func sha1PRNG(seed []byte, n int) []byte {
	state := sha1.Sum(seed)
	out := make([]byte, 0, n+sha1.Size)
	for len(out) < n {
		block := sha1.Sum(state[:])
		out = append(out, block[:]...)
		sha1PRNGUpdateState(&state, &block)
	}
	return out[:n]
}

// sha1PRNGUpdateState is sun.security.provider.SecureRandom.updateState:
// state += output + 1 as little-endian 160-bit numbers, except that Java
// adds the bytes as signed values and shifts the sum arithmetically, so the
// carry can be -1, 0 or +1. If no byte changed, state[0] is bumped so the
// generator cannot get stuck.
func sha1PRNGUpdateState(state, output *[sha1.Size]byte) {
	carry := 1
	changed := false
	for i := range state {
		v := int(int8(state[i])) + int(int8(output[i])) + carry
		t := byte(v)
		changed = changed || state[i] != t
		state[i] = t
		carry = v >> 8 // arithmetic shift, like Java's >> on int
	}
	if !changed {
		state[0]++
	}
}

// fieldBlock returns the AES cipher for an access key and key size.
func fieldBlock(accessKey string, size KeySize) (cipher.Block, error) {
	if !size.valid() {
		return nil, fmt.Errorf("key size %d, want 128 or 256", int(size))
	}
	if accessKey == "" {
		return nil, errors.New("empty access key")
	}
	block, err := aes.NewCipher(fieldKey(accessKey, size))
	if err != nil {
		return nil, fmt.Errorf("aes key: %w", err)
	}
	return block, nil
}

// EncryptField encrypts a sensitive field (appInfo userName/password, §2.6)
// the way the marketplace decrypts it: AES-CBC with PKCS#5 padding under
// the SHA1PRNG-derived key, written as a random 16-character IV of ASCII
// letters and digits followed by the base64 ciphertext. The plaintext must
// be UTF-8, as a Java String always is.
//
// Unlike the official util, which returns the IV followed by "null" for an
// empty plaintext, an empty plaintext gives one encrypted padding block.
func EncryptField(accessKey string, size KeySize, plaintext string) (string, error) {
	return EncryptFieldWithIV(accessKey, size, randomIV(), plaintext)
}

// randomIV draws 16 characters uniformly from ivAlphabet.
func randomIV() string {
	var iv [fieldIVLen]byte
	var buf [2 * fieldIVLen]byte
	for n := 0; n < len(iv); {
		rand.Read(buf[:]) // never fails: crypto/rand crashes the program instead
		for _, b := range buf {
			// 248 = 4*62: rejecting the top values keeps the draw uniform.
			if b < 248 && n < len(iv) {
				iv[n] = ivAlphabet[int(b)%len(ivAlphabet)]
				n++
			}
		}
	}
	return string(iv[:])
}

// EncryptFieldWithIV is EncryptField with a given IV, for test vectors and
// reproducible output. The IV must be 16 ASCII characters; it is used as the
// 16 IV bytes and written in front of the ciphertext. Never reuse an IV for
// real data.
func EncryptFieldWithIV(accessKey string, size KeySize, iv, plaintext string) (string, error) {
	block, err := fieldBlock(accessKey, size)
	if err != nil {
		return "", fmt.Errorf("encrypt field: %w", err)
	}
	if !isASCIIIV(iv) {
		return "", fmt.Errorf("encrypt field: iv must be %d ASCII characters", fieldIVLen)
	}
	if !utf8.ValidString(plaintext) {
		return "", errors.New("encrypt field: plaintext is not UTF-8")
	}
	// PKCS#5: always pad, 1 to 16 bytes each holding the pad length.
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	buf := make([]byte, len(plaintext)+pad)
	copy(buf, plaintext)
	for i := len(plaintext); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, []byte(iv)).CryptBlocks(buf, buf)
	return iv + base64.StdEncoding.EncodeToString(buf), nil
}

// DecryptField reverses EncryptField and decrypts the fields the
// marketplace encrypts (V1 mobilePhone and email, §2.6). Any input is safe:
// a malformed value gives an error wrapping ErrMalformedField, never a
// panic. An invalid key size or an empty key gives a different error,
// because that is a configuration fault, not bad input.
//
// The base64 part may have its padding omitted and may contain ASCII
// whitespace (line-wrapped encoders); the official util's commons-codec
// decoder also skips any other stray character, which is refused here
// because it hides corruption.
func DecryptField(accessKey string, size KeySize, value string) (string, error) {
	block, err := fieldBlock(accessKey, size)
	if err != nil {
		return "", fmt.Errorf("decrypt field: %w", err)
	}
	if len(value) <= fieldIVLen {
		return "", fmt.Errorf("decrypt field: %w: no ciphertext after the IV", ErrMalformedField)
	}
	iv := value[:fieldIVLen]
	if !isASCIIIV(iv) {
		return "", fmt.Errorf("decrypt field: %w: IV is not ASCII", ErrMalformedField)
	}
	data, err := decodeFieldBase64(value[fieldIVLen:])
	if err != nil {
		return "", fmt.Errorf("decrypt field: %w: bad base64", ErrMalformedField)
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return "", fmt.Errorf("decrypt field: %w: ciphertext of %d bytes is not whole AES blocks", ErrMalformedField, len(data))
	}
	cipher.NewCBCDecrypter(block, []byte(iv)).CryptBlocks(data, data)
	n, ok := pkcs5Unpad(data)
	if !ok {
		return "", fmt.Errorf("decrypt field: %w: bad padding (wrong key or key size?)", ErrMalformedField)
	}
	plain := data[:n]
	if !utf8.Valid(plain) {
		return "", fmt.Errorf("decrypt field: %w: plaintext is not UTF-8", ErrMalformedField)
	}
	return string(plain), nil
}

func isASCIIIV(iv string) bool {
	if len(iv) != fieldIVLen {
		return false
	}
	for i := 0; i < len(iv); i++ {
		if iv[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// decodeFieldBase64 decodes standard base64 with or without padding,
// ignoring ASCII whitespace.
func decodeFieldBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	if len(s)%4 == 0 {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// pkcs5Unpad returns the length of the plaintext in a decrypted buffer of
// whole blocks, checking every padding byte. The check takes the same time
// whatever the padding, so the error cannot serve as a padding oracle.
func pkcs5Unpad(b []byte) (int, bool) {
	n := len(b)
	pad := int(b[n-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, pad)
		same := subtle.ConstantTimeByteEq(b[n-i], byte(pad))
		good &= subtle.ConstantTimeSelect(inPad, same, 1)
	}
	if good != 1 {
		return 0, false
	}
	return n - pad, true
}
