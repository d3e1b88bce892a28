// V1VectorGen prints the reference vectors of the V1 authToken (contract
// §2.5: docs/contract.md) that package koogallery's tests check the Go
// code against (v1-vectors.json). It signs the way the official KooGallery
// Java verifier does: the request's parameters decoded the way a servlet's
// getParameterMap() decodes them (URLDecoder: '+' is a space, %XX is
// UTF-8), put in a TreeMap, authToken removed, the first value of each
// joined as k=v&..., and base64(HMAC-SHA256(key + timeStamp, that text))
// with javax.crypto.
//
// Regenerate (Java 17, no dependencies, output must not change between runs):
//
//	cd koogallery/testdata && java V1VectorGen.java > v1-vectors.json
//
// Each vector gives the query as the marketplace sends it (every value
// percent-encoded, the token's '+' as %2B), the same query with the token
// appended without encoding (its '+' then decodes to a space, which the
// official verifier refuses and the Go verifier reads back as '+'), the
// official verifier's verdict on both, the text signed and the token.
// Non-ASCII characters are written as \\u escapes in this source and in the
// JSON output so neither depends on the locale.

import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class V1VectorGen {
    // The keys of VectorGen: the contract's made-up key, the sample key of
    // the public copy of the official util, a single character, a key
    // longer than the HMAC block, a non-ASCII key and one with punctuation.
    static final String[] KEYS = {
        "abcde",
        "9fa6c870-8bb0-4e9b-b71e-4c223300156f",
        "k",
        "L0ng-Access-Key-".repeat(8) + "end",
        "\u5bc6\u94a5-\u043a\u043b\u044e\u0447-\ud83d\udd11-\u00e9",
        "a key with spaces & symbols !@#$%^&*()_+=",
    };

    // Values that stress the decoding: spaces, '+', '&', '=', '%', Chinese,
    // an emoji outside the BMP, an encrypted field (base64 with '+', '/'
    // and '='), empty.
    static final String[] VALUES = {
        "",
        "\u534e\u4e3a \u6d4b\u8bd5",
        "a+b c&d=e%f",
        "A1b2C3d4E5f6G7h8r9nJcNFNHV27ys2x+zjRfg==",
        "\ud83d\ude00 ok",
        "100/200?x=1",
        "W3sibmFtZSI6ImVtYWlsIiwidmFsdWUiOiJhQGIuY29tIn1d",
        "-12.50",
    };

    public static void main(String[] args) throws Exception {
        List<String> out = new ArrayList<>();

        // The contract's vectors (contract §2.5), key abcde.
        out.add(vector("abcde", params(
            "activity", "newInstance", "businessId", "61e834ba-7b97-4418-b8f7-e5345137278c",
            "customerId", "68cbc86abc2018ab880d92f36422fa0e", "expireTime", "20200727153156",
            "orderId", "CS1906666666ABCDE", "productId", "00301-666666-0--0", "testFlag", "1",
            "timeStamp", "20200727073711903")));
        out.add(vector("abcde", params(
            "activity", "newInstance", "businessId", "61e834ba-7b97-4418-b8f7-e5345137278c",
            "customerId", "68cbc86abc2018ab880d92f36422fa0e", "customerName", "", "expireTime", "20200727153156",
            "orderId", "CS1906666666ABCDE", "productId", "00301-666666-0--0", "testFlag", "1",
            "timeStamp", "20200727073711903")));
        out.add(vector("abcde", params(
            "activity", "expireInstance", "instanceId", "03pf80c2bae96vc49b80b917bea776d7",
            "orderId", "CS1906666666ABCDE", "testFlag", "0", "timeStamp", "20170725025113409")));
        out.add(vector("abcde", params(
            "activity", "instanceStatus", "instanceId", "huaweitest123456", "instanceStatus", "FREEZE",
            "testFlag", "1", "timeStamp", "20230327070251713")));
        out.add(vector("abcde", params(
            "activity", "newInstance", "businessId", "b-1", "customerId", "c-1",
            "customerName", "\u534e\u4e3a \u6d4b\u8bd5", "mobilePhone", "A1b2C3d4E5f6G7h8r9nJcNFNHV27ys2x+zjRfg==",
            "orderId", "CS1", "productId", "p-1", "skuCode", "s-1", "testFlag", "1",
            "timeStamp", "20240101000000000")));
        out.add(vector("abcde", params(
            "activity", "releaseInstance", "instanceId", "abc123", "testFlag", "0",
            "timeStamp", "20170725025113409")));

        // Generated calls: every key, parameters drawn from the V1 names and
        // VALUES, names in any order (the TreeMap sorts them), a mix of
        // upper- and lower-case first letters (byte order puts 'Z' before
        // 'a'), and names that Java orders differently from UTF-8 bytes
        // (U+FF21 against a surrogate pair).
        String[] names = {"activity", "orderId", "instanceId", "customerName", "mobilePhone", "orderAmount",
            "saasExtendParams", "Zone", "amount", "testFlag", "\uff21", "\ud83d\ude00"};
        Random rnd = new Random(20261205L);
        for (int k = 0; k < KEYS.length; k++) {
            for (int i = 0; i < 4; i++) {
                Map<String, String> p = new LinkedHashMap<>();
                p.put("activity", i % 2 == 0 ? "newInstance" : "refreshInstance");
                int n = 3 + rnd.nextInt(names.length - 2);
                for (int j = 0; j < n; j++) {
                    String name = names[1 + rnd.nextInt(names.length - 1)];
                    p.put(name, VALUES[rnd.nextInt(VALUES.length)]);
                }
                p.put("timeStamp", String.format("2026%02d%02d%02d%02d%02d%03d", 1 + rnd.nextInt(12),
                    1 + rnd.nextInt(28), rnd.nextInt(24), rnd.nextInt(60), rnd.nextInt(60), rnd.nextInt(1000)));
                out.add(vector(KEYS[k], p));
            }
        }

        StringBuilder sb = new StringBuilder("{\n");
        sb.append("  \"comment\": ").append(q("Generated by V1VectorGen.java with " + System.getProperty("java.vendor")
            + " Java " + System.getProperty("java.version")
            + " (javax.crypto, URLDecoder as a servlet decodes). Do not edit; regenerate with: cd koogallery/testdata && java V1VectorGen.java > v1-vectors.json")).append(",\n");
        sb.append("  \"authToken\": [\n    ").append(String.join(",\n    ", out)).append("\n  ]\n}\n");
        System.out.print(sb);
    }

    static Map<String, String> params(String... kv) {
        Map<String, String> p = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            p.put(kv[i], kv[i + 1]);
        }
        return p;
    }

    // vector signs p (decoded values) and writes it as the marketplace
    // sends it, then checks both forms of the query with the official
    // verifier.
    static String vector(String key, Map<String, String> p) throws Exception {
        String toSign = stringToSign(p);
        String token = Base64.getEncoder().encodeToString(hmac(key + p.get("timeStamp"), toSign));
        StringBuilder query = new StringBuilder();
        for (Map.Entry<String, String> e : p.entrySet()) {
            if (query.length() > 0) {
                query.append('&');
            }
            query.append(enc(e.getKey())).append('=').append(enc(e.getValue()));
        }
        String encoded = query + "&authToken=" + enc(token);
        String plain = query + "&authToken=" + token;
        return obj("key", key, "query", encoded, "stringToSign", toSign, "authToken", token,
            "plainTokenQuery", plain, "officialAcceptsPlain", String.valueOf(officialVerify(key, plain)),
            "officialAcceptsQuery", String.valueOf(officialVerify(key, encoded)));
    }

    // enc percent-encodes as URLEncoder does, but writes a space as %20
    // (as the documented example does), so that the vectors also show that
    // '+' and %20 decode alike where '+' is used by the generated rows.
    static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }

    // stringToSign is the official code: a TreeMap, authToken removed,
    // "&k=v" for each, the leading '&' cut.
    static String stringToSign(Map<String, String> decoded) {
        TreeMap<String, String> sorted = new TreeMap<>(decoded);
        sorted.remove("authToken");
        StringBuilder sb = new StringBuilder();
        for (String k : sorted.keySet()) {
            sb.append('&').append(k).append('=').append(sorted.get(k));
        }
        return sb.length() == 0 ? "" : sb.substring(1);
    }

    // officialVerify decodes a raw query as a servlet does (first value of
    // each name kept) and verifies it as the official Java does.
    static boolean officialVerify(String key, String rawQuery) throws Exception {
        Map<String, String> decoded = new LinkedHashMap<>();
        for (String pair : rawQuery.split("&")) {
            int eq = pair.indexOf('=');
            String name = URLDecoder.decode(eq < 0 ? pair : pair.substring(0, eq), StandardCharsets.UTF_8);
            String value = eq < 0 ? "" : URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
            decoded.putIfAbsent(name, value);
        }
        String token = decoded.get("authToken");
        String signature = Base64.getEncoder().encodeToString(hmac(key + decoded.get("timeStamp"), stringToSign(decoded)));
        return signature.equals(token);
    }

    static byte[] hmac(String key, String data) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
    }

    static String obj(String... kv) {
        StringBuilder sb = new StringBuilder("{");
        for (int i = 0; i < kv.length; i += 2) {
            if (i > 0) {
                sb.append(", ");
            }
            sb.append(q(kv[i])).append(": ");
            boolean bool = kv[i].startsWith("officialAccepts");
            sb.append(bool ? kv[i + 1] : q(kv[i + 1]));
        }
        return sb.append('}').toString();
    }

    // q writes a JSON string using only ASCII: everything outside printable
    // ASCII becomes a \\u escape (UTF-16 code units, as JSON wants).
    static String q(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"').toString();
    }
}
