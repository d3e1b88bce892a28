// Field-encryption vectors come from testdata/vectors.json, generated with
// Java 17's KeyGenerator/SHA1PRNG/Cipher; see signature_test.go for how to
// regenerate them (cd koogallery/testdata && java VectorGen.java >
// vectors.json).

package koogallery

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// specSeed is the sample key of the public copy of the official util (§2.6).
const specSeed = "9fa6c870-8bb0-4e9b-b71e-4c223300156f"

func TestDeriveFieldKeySpecVectors(t *testing.T) {
	require.Equal(t, "6de9c7fe5a9cd34b86611483e5124a8f", hex.EncodeToString(DeriveFieldKey(specSeed, AES128)))
	require.Equal(t, "6de9c7fe5a9cd34b86611483e5124a8fdd1fc74c4f54543ee7cd43c5195a3198", hex.EncodeToString(DeriveFieldKey(specSeed, AES256)))

	// AES-128 is the first 16 bytes of SHA1(SHA1(seed)).
	state := sha1.Sum([]byte(specSeed))
	block := sha1.Sum(state[:])
	require.Equal(t, block[:16], DeriveFieldKey(specSeed, AES128))
}

func TestEncryptFieldSpecVectors(t *testing.T) {
	for _, tc := range []struct {
		size KeySize
		want string
	}{
		{AES256, "A1b2C3d4E5f6G7h8AE/O9ZzEdvIfCGWCDtOkLw=="},
		{AES128, "A1b2C3d4E5f6G7h8r9nJcNFNHV27ys2x+zjRfg=="},
	} {
		got, err := EncryptFieldWithIV(specSeed, tc.size, "A1b2C3d4E5f6G7h8", "admin")
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
		plain, err := DecryptField(specSeed, tc.size, tc.want)
		require.NoError(t, err)
		require.Equal(t, "admin", plain)
	}
}

func TestDeriveFieldKeyJavaVectors(t *testing.T) {
	v := loadVectors(t)
	require.GreaterOrEqual(t, len(v.KeyDerivation), 20)
	var negativeCarry, discriminating int
	for i, tc := range v.KeyDerivation {
		require.Equal(t, tc.AES128, hex.EncodeToString(DeriveFieldKey(tc.Seed, AES128)), "vector %d (%q)", i, tc.Seed)
		require.Equal(t, tc.AES256, hex.EncodeToString(DeriveFieldKey(tc.Seed, AES256)), "vector %d (%q)", i, tc.Seed)
		neg, differs := updateStateCoverage(tc.Seed)
		if neg {
			negativeCarry++
		}
		if differs {
			discriminating++
		}
	}
	// AES-256 keys depend on the first updateState. Java adds signed
	// bytes, so its carry is 0 or negative, never +1 past the first byte;
	// the vectors must include such carries and must tell Java's signed
	// arithmetic from a naive unsigned addition.
	require.Greater(t, negativeCarry, len(v.KeyDerivation)/2, "too few vector seeds carry -1 in updateState")
	require.Greater(t, discriminating, len(v.KeyDerivation)/2, "too few vector seeds tell signed from unsigned updateState")
}

// updateStateCoverage looks at the first SHA1PRNG updateState for seed: does
// a negative carry pass from one byte to the next, and would an unsigned
// 160-bit addition (the obvious but wrong port) give another state?
func updateStateCoverage(seed string) (negativeCarry, differs bool) {
	state := sha1.Sum([]byte(seed))
	block := sha1.Sum(state[:])
	carry := 1
	for i := 0; i < sha1.Size-1; i++ {
		carry = (int(int8(state[i])) + int(int8(block[i])) + carry) >> 8
		negativeCarry = negativeCarry || carry < 0
	}
	unsigned := state
	c := 1
	for i := range unsigned {
		v := int(unsigned[i]) + int(block[i]) + c
		unsigned[i], c = byte(v), v>>8
	}
	sha1PRNGUpdateState(&state, &block)
	return negativeCarry, unsigned != state
}

func TestSHA1PRNGJavaVectors(t *testing.T) {
	v := loadVectors(t)
	require.NotEmpty(t, v.SHA1PRNG)
	for i, tc := range v.SHA1PRNG {
		want, err := hex.DecodeString(tc.Bytes)
		require.NoError(t, err)
		require.Equal(t, want, sha1PRNG([]byte(tc.Seed), len(want)), "vector %d", i)
		// Shorter draws are prefixes: one nextBytes call, no remainder.
		require.Equal(t, want[:37], sha1PRNG([]byte(tc.Seed), 37), "vector %d", i)
	}
}

func TestSHA1PRNGUpdateState(t *testing.T) {
	t.Run("signed carry", func(t *testing.T) {
		// 0x80+0x80+1 as unsigned bytes carries +1; as Java's signed bytes
		// it is -128-128+1 = -255, which stores 0x01 and carries -1.
		var state, out [sha1.Size]byte
		state[0], out[0] = 0x80, 0x80
		state[1] = 0x05
		sha1PRNGUpdateState(&state, &out)
		require.Equal(t, byte(0x01), state[0])
		require.Equal(t, byte(0x04), state[1])
		require.Equal(t, make([]byte, sha1.Size-2), state[2:], "5-1 = 4 does not carry on")
	})
	t.Run("carry runs through zero bytes", func(t *testing.T) {
		// An unsigned port gives FF 01 00 00 ... (carry +1 into byte 1,
		// then none); Java's -1 carry turns every following zero byte
		// into 0xFF.
		var state, out [sha1.Size]byte
		state[0] = 0xFF // -1 + -1 + 1 = -1: stores 0xFF, carries -1
		out[0] = 0xFF
		sha1PRNGUpdateState(&state, &out)
		want := [sha1.Size]byte{}
		for i := range want {
			want[i] = 0xFF
		}
		require.Equal(t, want, state)
	})
	t.Run("carry of -2", func(t *testing.T) {
		// -128-128+1 = -255 stores 0x01 and carries -1; then
		// -128-128-1 = -257 stores 0xFF and carries -2.
		var state, out [sha1.Size]byte
		state[0], out[0] = 0x80, 0x80
		state[1], out[1] = 0x80, 0x80
		state[2] = 0x05
		sha1PRNGUpdateState(&state, &out)
		require.Equal(t, []byte{0x01, 0xFF, 0x03, 0x00}, state[:4])
	})
	t.Run("no carry", func(t *testing.T) {
		var state, out [sha1.Size]byte
		state[0], out[0] = 0x7F, 0x7F // 127+127+1 = 255: stores 0xFF, carries 0
		state[1], out[1] = 0x40, 0x40 // 64+64+0 = 128: stores 0x80, carries 0
		state[2], out[2] = 0x7F, 0x01 // 127+1 = 128: stores 0x80, carries 0
		state[3], out[3] = 0xFF, 0x01 // -1+1 = 0: stores 0x00, carries 0
		state[4], out[4] = 0xFF, 0x00 // -1+0 = -1: stores 0xFF, carries -1
		state[5] = 0x02               // 2+0-1 = 1
		sha1PRNGUpdateState(&state, &out)
		require.Equal(t, []byte{0xFF, 0x80, 0x80, 0x00, 0xFF, 0x01, 0x00}, state[:7])
	})
	t.Run("no byte changed", func(t *testing.T) {
		// Adding -1 + carry 1 leaves byte 0 alone with no carry, and zero
		// output bytes leave the rest alone: Java then bumps state[0].
		var state, out [sha1.Size]byte
		out[0] = 0xFF
		sha1PRNGUpdateState(&state, &out)
		want := [sha1.Size]byte{0: 1}
		require.Equal(t, want, state)
	})
}

func TestFieldCryptJavaVectors(t *testing.T) {
	v := loadVectors(t)
	require.GreaterOrEqual(t, len(v.FieldCrypt), 40)
	seen := map[int]bool{}
	for i, tc := range v.FieldCrypt {
		size := KeySize(tc.Size)
		seen[len(tc.Plaintext)] = true
		got, err := EncryptFieldWithIV(tc.Key, size, tc.IV, tc.Plaintext)
		require.NoError(t, err, "vector %d", i)
		require.Equal(t, tc.Value, got, "vector %d", i)
		plain, err := DecryptField(tc.Key, size, tc.Value)
		require.NoError(t, err, "vector %d", i)
		require.Equal(t, tc.Plaintext, plain, "vector %d", i)
	}
	for _, n := range []int{0, 15, 16, 17} {
		require.True(t, seen[n], "no vector with a %d-byte plaintext", n)
	}
}

func TestEncryptFieldRandomIV(t *testing.T) {
	const key = "abcde"
	values := map[string]bool{}
	for range 50 {
		value, err := EncryptField(key, AES256, "管理员-admin")
		require.NoError(t, err)
		iv := value[:16]
		for _, c := range iv {
			require.Contains(t, ivAlphabet, string(c))
		}
		plain, err := DecryptField(key, AES256, value)
		require.NoError(t, err)
		require.Equal(t, "管理员-admin", plain)
		values[value] = true
	}
	require.Len(t, values, 50, "every encryption must draw a new IV")
}

func TestEncryptFieldErrors(t *testing.T) {
	for _, tc := range []struct {
		name, key, iv, plain string
		size                 KeySize
	}{
		{"key size 192", "k", "A1b2C3d4E5f6G7h8", "x", 192},
		{"key size 0", "k", "A1b2C3d4E5f6G7h8", "x", 0},
		{"empty key", "", "A1b2C3d4E5f6G7h8", "x", AES256},
		{"short iv", "k", "A1b2C3d4E5f6G7h", "x", AES256},
		{"long iv", "k", "A1b2C3d4E5f6G7h8X", "x", AES256},
		{"non-ASCII iv", "k", "A1b2C3d4E5f6G7中", "x", AES256},
		{"plaintext not UTF-8", "k", "A1b2C3d4E5f6G7h8", "\xff\xfe", AES256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EncryptFieldWithIV(tc.key, tc.size, tc.iv, tc.plain)
			require.Error(t, err)
			require.NotContains(t, err.Error(), tc.plain)
		})
	}
	_, err := EncryptField("k", 512, "x")
	require.Error(t, err)
}

func TestDeriveFieldKey(t *testing.T) {
	require.Nil(t, DeriveFieldKey("k", 192))
	require.Len(t, DeriveFieldKey("k", AES128), 16)
	require.Len(t, DeriveFieldKey("k", AES256), 32)

	// Callers get a copy: scribbling on it must not corrupt the cache.
	k := DeriveFieldKey(specSeed, AES128)
	clear(k)
	require.Equal(t, "6de9c7fe5a9cd34b86611483e5124a8f", hex.EncodeToString(DeriveFieldKey(specSeed, AES128)))
}

func TestFieldCryptConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []string{"abcde", specSeed, "密钥"}[i%3]
			size := []KeySize{AES128, AES256}[i%2]
			for range 50 {
				value, err := EncryptField(key, size, "secret")
				if err != nil {
					t.Error(err)
					return
				}
				if plain, err := DecryptField(key, size, value); err != nil || plain != "secret" {
					t.Errorf("round trip: %q, %v", plain, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestDecryptFieldHostile(t *testing.T) {
	const key, iv = specSeed, "A1b2C3d4E5f6G7h8"
	good := "A1b2C3d4E5f6G7h8AE/O9ZzEdvIfCGWCDtOkLw==" // "admin", AES-256
	ct, err := base64.StdEncoding.DecodeString(good[16:])
	require.NoError(t, err)

	// encryptRaw encrypts whole blocks without padding, to forge bad pads.
	encryptRaw := func(plain []byte) string {
		block, err := aes.NewCipher(DeriveFieldKey(key, AES256))
		require.NoError(t, err)
		out := make([]byte, len(plain))
		cipher.NewCBCEncrypter(block, []byte(iv)).CryptBlocks(out, plain)
		return iv + base64.StdEncoding.EncodeToString(out)
	}
	pad := func(s string, b ...byte) []byte { return append([]byte(s), b...) }

	tests := []struct {
		name  string
		value string
		size  KeySize
	}{
		{"empty", "", AES256},
		{"IV only", iv, AES256},
		{"15 characters", iv[:15], AES256},
		{"one base64 char", iv + "A", AES256},
		{"bad base64", iv + "!!!!!!!!!!!!!!!!!!!!!!==", AES256},
		{"base64 with a stray dot", good[:20] + "." + good[20:], AES256},
		{"15-byte ciphertext", iv + base64.StdEncoding.EncodeToString(ct[:15]), AES256},
		{"17-byte ciphertext", iv + base64.StdEncoding.EncodeToString(append(ct, 0)), AES256},
		{"truncated base64", good[:len(good)-6], AES256},
		{"non-ASCII IV", "A1b2C3d4E5f6G7中" + good[16:], AES256},
		{"IV split inside a rune", "A1b2C3d4E5f6G7h中" + good[16:], AES256},
		{"wrong key size", good, AES128},
		{"pad byte 0", encryptRaw(pad("0123456789abcde", 0)), AES256},
		{"pad byte 17", encryptRaw(pad("0123456789abcdef", pad("", 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17)...)), AES256},
		{"inconsistent pad", encryptRaw(pad("0123456789abc", 2, 3, 3)), AES256},
		{"plaintext not UTF-8", encryptRaw(pad("\xff\xfe0123456789a", 3, 3, 3)), AES256},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plain, err := DecryptField(key, tc.size, tc.value)
			require.ErrorIs(t, err, ErrMalformedField)
			require.Empty(t, plain)
		})
	}

	// A forged pad that is valid is accepted: the check is the padding,
	// not a fixed length.
	plain, err := DecryptField(key, AES256, encryptRaw(pad("0123456789abc", 3, 3, 3)))
	require.NoError(t, err)
	require.Equal(t, "0123456789abc", plain)

	// Another key is refused (the padding check catches it with
	// overwhelming likelihood, and does for this vector).
	_, err = DecryptField("abcde", AES256, good)
	require.ErrorIs(t, err, ErrMalformedField)

	// Configuration faults are not ErrMalformedField.
	_, err = DecryptField(key, 192, good)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrMalformedField)
	_, err = DecryptField("", AES256, good)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrMalformedField)
}

func TestDecryptFieldLenientBase64(t *testing.T) {
	good := "A1b2C3d4E5f6G7h8AE/O9ZzEdvIfCGWCDtOkLw=="
	for name, value := range map[string]string{
		"unpadded":       strings.TrimRight(good, "="),
		"line-wrapped":   good[:26] + "\r\n" + good[26:],
		"spaces and tab": good[:20] + " \t" + good[20:] + " ",
	} {
		t.Run(name, func(t *testing.T) {
			plain, err := DecryptField(specSeed, AES256, value)
			require.NoError(t, err)
			require.Equal(t, "admin", plain)
		})
	}
}

func TestPKCS5Unpad(t *testing.T) {
	for n := 1; n <= aes.BlockSize; n++ {
		b := make([]byte, 2*aes.BlockSize)
		for i := len(b) - n; i < len(b); i++ {
			b[i] = byte(n)
		}
		got, ok := pkcs5Unpad(b)
		require.True(t, ok, "pad %d", n)
		require.Equal(t, len(b)-n, got)

		if n > 1 {
			b[len(b)-n] ^= 0x40 // first pad byte wrong
			_, ok = pkcs5Unpad(b)
			require.False(t, ok, "pad %d with a wrong byte", n)
		}
	}
	for _, last := range []byte{0, 17, 0xFF} {
		b := make([]byte, aes.BlockSize)
		for i := range b {
			b[i] = last
		}
		_, ok := pkcs5Unpad(b)
		require.False(t, ok, "pad byte %d", last)
	}
}

func FuzzDecryptField(f *testing.F) {
	f.Add("A1b2C3d4E5f6G7h8AE/O9ZzEdvIfCGWCDtOkLw==", "A1b2C3d4E5f6G7h8", "admin", true)
	f.Add("A1b2C3d4E5f6G7h8r9nJcNFNHV27ys2x+zjRfg==", "0000000000000000", "", false)
	f.Add("", "short", "管理员🔑", true)
	f.Add("A1b2C3d4E5f6G7h8====", "A1b2C3d4E5f6G7中", "1234567890123456", false)
	// Edges: base64 wrapped over lines and unpadded, a stray character, a
	// ciphertext one byte short of a block, a long non-ASCII plaintext.
	f.Add("A1b2C3d4E5f6G7h8AE/O9Zz\nEdvIfCGWCDtOkLw", "A1b2C3d4E5f6G7h8", strings.Repeat("初始密码", 40), true)
	f.Add("A1b2C3d4E5f6G7h8AE/O9ZzEdvIfCGWCDtOk*w==", "0123456789abcdef", "\x00", false)
	f.Add("A1b2C3d4E5f6G7h8AAAAAAAAAAAAAAAAAAAA", "A1b2C3d4E5f6G7h", "x", true)
	f.Fuzz(func(t *testing.T, value, iv, plaintext string, use256 bool) {
		size := AES128
		if use256 {
			size = AES256
		}
		if plain, err := DecryptField(specSeed, size, value); err != nil {
			require.ErrorIs(t, err, ErrMalformedField)
		} else {
			require.True(t, utf8.ValidString(plain))
		}

		enc, err := EncryptFieldWithIV(specSeed, size, iv, plaintext)
		if len(iv) != 16 || !isASCIIIV(iv) || !utf8.ValidString(plaintext) {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(enc, iv))
		back, err := DecryptField(specSeed, size, enc)
		require.NoError(t, err)
		require.Equal(t, plaintext, back)
	})
}
