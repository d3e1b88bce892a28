// CanonicalVectorGen prints the canonical-body vectors that package
// koogallery's tests check CanonicalBody and the Verifier against
// (canonical-vectors.json). It canonicalises each body the way Huawei's
// SaaS 2.0 sample project does before it verifies a signature (contract
// §8.1, §8.2: docs/contract.md), with the real Jackson rather than a second
// reading of the rules:
//
//   - basic interface: the body is bound to Map<String,String> (a number or
//     a boolean becomes its text), copied into a TreeMap, null members are
//     removed, and ObjectMapper.writeValueAsString writes it;
//     inner = hex(HMAC-SHA256(key, canonical)),
//     signature = hex(HMAC-SHA256(key, key + nonce + timestamp + inner));
//   - 联营 kit: the same over Map<String,Object> (values keep their JSON
//     type; nested objects are LinkedHashMaps, floats Doubles), and
//     x-sign = hex(HMAC-SHA256(key, key + nonce + timestamp + canonical)).
//
// Hex is written in lower case, as the sample's Hex.encodeHexString does.
//
// Regenerate (Java 17 and Debian's libjackson2-databind-java; the output
// must not change between runs):
//
//	make vectors
//
// Non-ASCII characters are written as \\u escapes in this source and in the
// JSON output, so neither depends on the locale.

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;

public class CanonicalVectorGen {
    static final ObjectMapper MAPPER = new ObjectMapper();
    static final HexFormat LOWER = HexFormat.of();

    // Bodies of the basic interface: unsorted members, whitespace and CRLF,
    // Chinese text raw and escaped, control characters, characters encoding/json
    // would escape (<, >, &, U+2028), empty strings, nulls, numbers and
    // booleans that Map<String,String> turns into text, a repeated member
    // (the last wins), names that differ in case, and names whose order
    // differs between UTF-16 and UTF-8.
    static final String[] BASIC = {
        "{\"activity\":\"newInstance\",\"orderId\":\"CS2211181819B4LVS\",\"orderLineId\":\"CS2211181819B4LVS-000001\","
            + "\"businessId\":\"87b94795-0603-4e24-8ae5-69420d60e3c8\",\"testFlag\":\"1\"}",
        "{\"testFlag\":\"0\",\"status\":\"FREEZE\",\"instanceId\":\"inst-001\",\"activity\":\"updateInstanceStatus\"}",
        "{ \"scene\" : \"RENEWAL\",\r\n  \"activity\" : \"refreshInstance\",\r\n  \"instanceId\" : \"inst-1\",\r\n"
            + "  \"orderId\" : \"CS1\", \"orderLineId\" : \"CS1-000001\", \"expireTime\" : \"20251231235959\",\r\n"
            + "  \"memo\" : \"\u4e2d\u6587\u5907\u6ce8\uff0c\u542b\u6807\u70b9\u3002\" }\r\n",
        "{\"memo\":\"a\\u0001b\\tc\\nd\\u001fe\\\"f\\\\g/h<i>&j\\u2028k\u007fl\\b\\f\\r\",\"activity\":\"queryInstance\",\"instanceId\":\"x\"}",
        "{\"orderLineId\":\"\",\"productId\":null,\"testFlag\":1,\"amount\":1.50,\"zero\":-0,\"big\":1E2,\"yes\":true,\"no\":false,"
            + "\"activity\":\"releaseInstance\",\"instanceId\":\"inst-2\",\"empty\":\"\"}",
        "{\"name\":\"\\u4e2d\\u6587\",\"smile\":\"\\ud83d\\ude00\",\"slash\":\"\\/\",\"activity\":\"orderNotify\"}",
        "{\"z\":\"1\",\"\uff21\":\"2\",\"\ud83d\ude00\":\"3\",\"A\":\"4\",\"a\":\"5\",\"\u00e9\":\"6\"}",
        "{\"b\":\"first\",\"a\":\"x\",\"b\":\"second\"}",
        "{\"activity\":\"queryInstance\",\"instanceId\":\"i-1\",\"ACTIVITY\":\"releaseInstance\"}",
        "{}",
    };

    // Bodies of the kit: the documented tenantSync example, nested lists
    // and objects (their order kept), nested nulls (kept), numbers Java
    // re-prints as Integer, Long, BigInteger or Double, empty containers,
    // control characters in names, and a repeated nested member.
    static final String[] KIT = {
        "{\"instanceId\":\"huaiweitest123456\",\"orderId\":\"CS1906666666ABCDE\",\"tenantId\":\"68cbc86abc2018ab880d92f36422fa0e\","
            + "\"tenantCode\":\"huawei\",\"name\":\"huaiweitest\",\"domainName\":\"https://example.tenantaccount.com\",\"flag\":1,"
            + "\"testFlag\":0,\"timeStamp\":\"20220413093539534\"}",
        "{\"userList\":[{\"userName\":\"zhangsan01\",\"name\":\"\u5f20\u4e09\",\"orgCode\":\"123456789\",\"role\":\"admin\",\"enable\":\"true\"},"
            + "{\"userName\":\"lisi\",\"name\":\"\u674e\u56db\",\"orgCode\":null,\"role\":\"\",\"enable\":\"false\"}],"
            + "\"tenantId\":\"68cbc86abc2018ab880d92f36422fa0e\",\"instanceId\":\"huaiweitest123456\",\"flag\":1,\"appId\":\"app-001\","
            + "\"testFlag\":0,\"timeStamp\":\"20220420114117642\",\"currentSyncTime\":\"20220420114117642\",\"skipped\":null}",
        "{\"n\":[1,-0,1.0,1e2,1.5e-7,12345678.9,0.001,1e-4,1e7,9999999.0,-2.5,12345678901234567890,3.0E10,0.1,100],"
            + "\"orgInfoList\":[{\"orgCode\":\"o1\",\"orgName\":\"\u7814\u53d1\u90e8\",\"parentCode\":\"\",\"children\":[]},{}],"
            + "\"ok\":true,\"flag\":2}",
        "{\"o\":{\"a\":1,\"b\":2,\"a\":3},\"k\\u0002ey\":\"v\\u0003\",\"e\":{},\"l\":[],\"s\":\"<>&\\u2029\"}",
    };

    public static void main(String[] args) throws Exception {
        StringBuilder out = new StringBuilder("{\n");
        out.append("  \"comment\": ").append(q("Generated by CanonicalVectorGen.java with Jackson "
            + com.fasterxml.jackson.databind.cfg.PackageVersion.VERSION + " on " + System.getProperty("java.vendor")
            + " Java " + System.getProperty("java.version") + ". Do not edit; regenerate with: make vectors")).append(",\n");

        List<String> vectors = new ArrayList<>();
        String key = "abcde";
        for (int i = 0; i < BASIC.length; i++) {
            String body = BASIC[i];
            String nonce = i == 0 ? "50D83F1E0A6B4C3F" : "NONCE" + i;
            String ts = String.valueOf(1680508066618L + i);
            Map<String, String> bound = MAPPER.readValue(body, new TypeReference<Map<String, String>>() { });
            Map<String, Object> sorted = new TreeMap<>(bound);
            sorted.entrySet().removeIf(e -> Objects.isNull(e.getValue()));
            String canonical = MAPPER.writeValueAsString(sorted);
            String inner = LOWER.formatHex(hmac(key, canonical));
            String sig = LOWER.formatHex(hmac(key, key + nonce + ts + inner));
            vectors.add(obj("form", "basic", "key", key, "nonce", nonce, "timestamp", ts, "body", body,
                "canonical", canonical, "signature", sig));
        }
        for (int i = 0; i < KIT.length; i++) {
            String body = KIT[i];
            String nonce = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA";
            String ts = String.valueOf(1680508066618L + i);
            Map<String, Object> bound = MAPPER.readValue(body, new TypeReference<Map<String, Object>>() { });
            Map<String, Object> sorted = new TreeMap<>(bound);
            sorted.entrySet().removeIf(e -> Objects.isNull(e.getValue()));
            String canonical = MAPPER.writeValueAsString(sorted);
            String sig = LOWER.formatHex(hmac(key, key + nonce + ts + canonical));
            vectors.add(obj("form", "kit", "key", key, "nonce", nonce, "timestamp", ts, "body", body,
                "canonical", canonical, "signature", sig));
        }
        out.append("  \"canonical\": [\n    ").append(String.join(",\n    ", vectors)).append("\n  ]\n}\n");
        System.out.print(out);
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
            sb.append(q(kv[i])).append(": ").append(q(kv[i + 1]));
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
