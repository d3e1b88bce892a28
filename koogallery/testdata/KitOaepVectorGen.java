// KitOaepVectorGen prints RSA-OAEP ciphertexts of clientSecrets, as a Java
// marketplace would send them in the 联营 kit's applicationSync (contract
// §12.6: docs/contract.md), for package koogallery's tests of
// KitKeys.DecryptClientSecret (kit-oaep-vectors.json). The key is
// kit-oaep-key.pem, a throwaway 3072-bit test key (PKCS#8); each plaintext
// is encrypted with the three transformations a Java sender would
// plausibly use, with no explicit parameters unless named:
//
//   - RSA/ECB/OAEPWithSHA-256AndMGF1Padding: SHA-256, but MGF1 over SHA-1;
//   - RSA/ECB/OAEPPadding: SHA-1 and MGF1-SHA-1;
//   - RSA/ECB/OAEPPadding with an explicit SHA-256 OAEPParameterSpec:
//     SHA-256 and MGF1-SHA-256.
//
// Each ciphertext is decrypted back with the same transformation before it
// is printed. OAEP is randomised, so the output changes on every run;
// regenerate with (Java 17):
//
//	make vectors
//
// Non-ASCII characters are written as \\u escapes in this source and in the
// JSON output, so neither depends on the locale.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.interfaces.RSAPrivateCrtKey;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.RSAPublicKeySpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import javax.crypto.Cipher;
import javax.crypto.spec.OAEPParameterSpec;
import javax.crypto.spec.PSource;

public class KitOaepVectorGen {
    record Variant(String transformation, String hash, String mgfHash, OAEPParameterSpec spec) {}

    static final List<Variant> VARIANTS = List.of(
        new Variant("RSA/ECB/OAEPWithSHA-256AndMGF1Padding", "SHA-256", "SHA-1", null),
        new Variant("RSA/ECB/OAEPPadding", "SHA-1", "SHA-1", null),
        new Variant("RSA/ECB/OAEPPadding", "SHA-256", "SHA-256",
            new OAEPParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, PSource.PSpecified.DEFAULT)));

    static final List<String> PLAINTEXTS = List.of(
        "my-client-secret-0001",
        "\u5BC6\u94A5-Secret/+=!", // 密钥-Secret/+=!
        "x".repeat(190)); // near the most SHA-256 OAEP holds under a 3072-bit key (318 bytes)

    public static void main(String[] args) throws Exception {
        String pem = Files.readString(Path.of("kit-oaep-key.pem"), StandardCharsets.US_ASCII);
        byte[] der = Base64.getMimeDecoder().decode(pem
            .replace("-----BEGIN PRIVATE KEY-----", "").replace("-----END PRIVATE KEY-----", ""));
        KeyFactory kf = KeyFactory.getInstance("RSA");
        RSAPrivateCrtKey priv = (RSAPrivateCrtKey) kf.generatePrivate(new PKCS8EncodedKeySpec(der));
        var pub = kf.generatePublic(new RSAPublicKeySpec(priv.getModulus(), priv.getPublicExponent()));

        List<String> out = new ArrayList<>();
        for (String plain : PLAINTEXTS) {
            for (Variant v : VARIANTS) {
                Cipher enc = Cipher.getInstance(v.transformation());
                Cipher dec = Cipher.getInstance(v.transformation());
                if (v.spec() == null) {
                    enc.init(Cipher.ENCRYPT_MODE, pub);
                    dec.init(Cipher.DECRYPT_MODE, priv);
                } else {
                    enc.init(Cipher.ENCRYPT_MODE, pub, v.spec());
                    dec.init(Cipher.DECRYPT_MODE, priv, v.spec());
                }
                byte[] plainBytes = plain.getBytes(StandardCharsets.UTF_8);
                byte[] ct = enc.doFinal(plainBytes);
                if (!Arrays.equals(dec.doFinal(ct), plainBytes)) {
                    throw new IllegalStateException("round trip failed: " + v);
                }
                out.add("  {\"transformation\": " + quote(v.transformation() + (v.spec() == null ? "" : " + OAEPParameterSpec"))
                    + ", \"hash\": " + quote(v.hash()) + ", \"mgfHash\": " + quote(v.mgfHash())
                    + ", \"plaintext\": " + quote(plain)
                    + ", \"ciphertext\": " + quote(Base64.getEncoder().encodeToString(ct)) + "}");
            }
        }
        System.out.println("[\n" + String.join(",\n", out) + "\n]");
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7E) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
