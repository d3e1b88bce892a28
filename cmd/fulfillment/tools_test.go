package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// kitHeadersFrom reads the -H name:value arguments sign -kit prints.
func kitHeadersFrom(t *testing.T, out string) http.Header {
	t.Helper()
	h := http.Header{}
	matches := regexp.MustCompile(`-H ([a-z-]+):(\S*)`).FindAllStringSubmatch(out, -1)
	require.Len(t, matches, 3, out)
	for _, m := range matches {
		h.Add(m[1], m[2])
	}
	return h
}

func TestSignKitProducesVerifiableHeaders(t *testing.T) {
	body := `{"tenantId":"T","instanceId":"","flag":0,"testFlag":1}`
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"sign", "-kit", "-key", "kit-key", "-body", body}, env(nil), nil, &out))
	v := &koogallery.KitVerifier{AccessKey: "kit-key", Nonces: freshNonces{}}
	form, err := v.Verify(context.Background(), kitHeadersFrom(t, out.String()), []byte(body))
	require.NoError(t, err)
	require.Equal(t, koogallery.FormCanonical, form, "the canonical form is signed by default")

	// From standard input, with the kit key from the environment (not the
	// basic interface's), over the raw body.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"sign", "-kit", "-form", "raw"},
		env(map[string]string{"KOOGALLERY_KIT_ACCESS_KEY": "kit-key", "KOOGALLERY_ACCESS_KEY": "basic-key"}), strings.NewReader(body), &out))
	form, err = v.Verify(context.Background(), kitHeadersFrom(t, out.String()), []byte(body))
	require.NoError(t, err)
	require.Equal(t, koogallery.FormRaw, form)

	err = run(context.Background(), []string{"sign", "-kit", "-body", body}, env(map[string]string{"KOOGALLERY_ACCESS_KEY": "basic-key"}), nil, &out)
	require.ErrorContains(t, err, "set KOOGALLERY_KIT_ACCESS_KEY")
	require.ErrorContains(t, run(context.Background(), []string{"sign", "-kit", "-key", "k", "-body", "[1]"}, env(nil), nil, &out), "no canonical form")
	require.ErrorContains(t, run(context.Background(), []string{"sign", "-kit", "-key", "k", "-form", "sorted", "-body", body}, env(nil), nil, &out), "unknown signature form")
}

func TestKitKeygen(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"kit-keygen", "-out", dir}, env(nil), nil, &out))
	require.Contains(t, out.String(), "kit-public.pem")

	privPath, pubPath := filepath.Join(dir, "kit-private.pem"), filepath.Join(dir, "kit-public.pem")
	info, err := os.Stat(privPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	keys, err := koogallery.LoadKitKeys([]string{privPath})
	require.NoError(t, err)
	pub, err := koogallery.LoadKitPublicKey(pubPath)
	require.NoError(t, err)
	require.Equal(t, 3072, pub.N.BitLen())
	ct, err := koogallery.EncryptClientSecret(pub, "s3cret")
	require.NoError(t, err)
	secret, with, err := keys.DecryptClientSecret(ct)
	require.NoError(t, err)
	require.Equal(t, "s3cret", secret)
	require.Equal(t, "kit-private.pem, OAEP SHA-256/MGF1-SHA-1", with)

	// Never overwrites, not even one of the two files.
	before, err := os.ReadFile(privPath)
	require.NoError(t, err)
	require.ErrorContains(t, run(context.Background(), []string{"kit-keygen", "-out", dir}, env(nil), nil, &out), "exists; not overwriting")
	after, err := os.ReadFile(privPath)
	require.NoError(t, err)
	require.Equal(t, before, after)
	require.NoError(t, os.Remove(privPath))
	require.ErrorContains(t, run(context.Background(), []string{"kit-keygen", "-out", dir}, env(nil), nil, &out), "kit-public.pem exists")
	_, err = os.Stat(privPath)
	require.True(t, os.IsNotExist(err), "nothing is written when one file exists")

	require.ErrorContains(t, run(context.Background(), []string{"kit-keygen", "-out", t.TempDir(), "-bits", "2048"}, env(nil), nil, &out), "at least 3072")
	require.ErrorContains(t, run(context.Background(), []string{"kit-keygen", "-out", filepath.Join(dir, "missing")}, env(nil), nil, &out), "no such file")

	// kit-encrypt encrypts as the marketplace does, with the public key
	// of EMULATOR_KIT_PUBLIC_KEY_FILE or -public.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"kit-encrypt", "by-hand-secret"},
		env(map[string]string{"EMULATOR_KIT_PUBLIC_KEY_FILE": pubPath}), nil, &out))
	secret, _, err = keys.DecryptClientSecret(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	require.Equal(t, "by-hand-secret", secret)
	require.ErrorContains(t, run(context.Background(), []string{"kit-encrypt", "-public", filepath.Join(dir, "none.pem"), "x"}, env(nil), nil, &out), "none.pem")
	require.ErrorContains(t, run(context.Background(), []string{"kit-encrypt", "-public", pubPath}, env(nil), nil, &out), "give the client secret")
}

func TestSignV1KitProducesAVerifiableHeader(t *testing.T) {
	body := `{"instanceId":"I1","tenantId":"T1","tenantCode":"c","name":"n","domainName":"https://d.example","flag":1,"timeStamp":"20261204101010123"}`
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"sign", "-v1", "-kit", "-body", body},
		env(map[string]string{"KOOGALLERY_V1_ACCESS_KEY": "v1-key", "KOOGALLERY_ACCESS_KEY": "basic-key"}), nil, &out))
	fields := strings.Fields(out.String())
	require.Len(t, fields, 2)
	require.Equal(t, "-H", fields[0])
	name, token, ok := strings.Cut(fields[1], ":")
	require.True(t, ok)
	h := http.Header{}
	h.Set(name, token)
	require.NoError(t, koogallery.VerifyV1Kit("v1-key", h, []byte(body)))
	require.Error(t, koogallery.VerifyV1Kit("basic-key", h, []byte(body)))
}

func TestSignV1ProducesAVerifiableQuery(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"sign", "-v1", "-key", "v1-key",
		"activity=newInstance", "customerName=华为 测+试", "customerId=c-1", "businessId=b-1", "orderId=CS1",
		"skuCode=s-1", "productId=p-1", "mobilePhone=", "expireTime=20270101000000"}, env(nil), nil, &out))
	query := strings.TrimSpace(out.String())
	require.Regexp(t, `&authToken=[^&]+$`, query, "authToken comes last")
	require.NotContains(t, query, "+", "spaces are %20, '+' is %2B")

	v := &koogallery.V1Verifier{AccessKey: "v1-key"}
	params, err := v.Verify(query)
	require.NoError(t, err)
	require.Equal(t, "华为 测+试", params.Get("customerName"))
	require.Contains(t, params, "mobilePhone", "an empty value is sent and signed")
	req, err := koogallery.ParseV1Request(params)
	require.NoError(t, err)
	require.Equal(t, koogallery.V1ActivityNewInstance, req.V1Activity())
	_, err = (&koogallery.V1Verifier{AccessKey: "other"}).Verify(query)
	require.True(t, koogallery.IsAuthError(err))

	// The key from KOOGALLERY_V1_ACCESS_KEY, not the basic interface's.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"sign", "-v1", "activity=queryInstance", "instanceId=I1"},
		env(map[string]string{"KOOGALLERY_V1_ACCESS_KEY": "v1-key", "KOOGALLERY_ACCESS_KEY": "basic-key"}), nil, &out))
	_, err = v.Verify(strings.TrimSpace(out.String()))
	require.NoError(t, err)

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"sign", "-v1", "activity=queryInstance"}, "set KOOGALLERY_V1_ACCESS_KEY"},
		{[]string{"sign", "-v1", "-key", "k"}, "name=value arguments"},
		{[]string{"sign", "-v1", "-key", "k", "activity"}, `"activity" is not name=value`},
		{[]string{"sign", "-v1", "-key", "k", "=x"}, "is not name=value"},
		{[]string{"sign", "-v1", "-key", "k", "a=1", "a=2"}, "given twice"},
		{[]string{"sign", "-v1", "-key", "k", "a=1", "timeStamp=20260101000000000"}, "added by sign"},
		{[]string{"sign", "-v1", "-key", "k", "-kit", "a=1"}, "signed over its body"},
		{[]string{"sign", "-v1", "-kit", "-body", `{"timeStamp":"1"}`}, "set KOOGALLERY_V1_ACCESS_KEY"},
		{[]string{"sign", "-v1", "-kit", "-key", "k", "-body", `{"tenantId":"T"}`}, "no timeStamp"},
		{[]string{"sign", "-v1", "-key", "k", "-body", "{}", "a=1"}, "has no body"},
	} {
		err := run(context.Background(), tc.args, env(map[string]string{"KOOGALLERY_ACCESS_KEY": "basic-key"}), nil, &out)
		require.ErrorContains(t, err, tc.msg, tc.args)
	}
}
