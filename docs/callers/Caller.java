// Call an API protected by selfjwt.kyma with the token that the edge host's refresher keeps fresh.
//   SELFJWT_TOKEN_FILE=/var/lib/selfjwt/token java Caller.java URL [URL ...]     (Java 11+)
// Prints each response body; on an error prints what to do on stderr and exits 1.
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;

public class Caller {
    static final Path TOKEN_FILE =
        Path.of(System.getenv().getOrDefault("SELFJWT_TOKEN_FILE", "/var/lib/selfjwt/token"));
    // HttpClient follows no redirect by default, so the token goes nowhere else.
    static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    static class CallerException extends Exception {
        CallerException(String message) {
            super(message);
        }
    }

    static String readToken() throws CallerException {
        // Read the file for every call, never once per process: the refresher replaces the token
        // before it expires and when the key rotates, so a kept token expires or names a retired key.
        String token;
        try {
            token = Files.readString(TOKEN_FILE, StandardCharsets.US_ASCII).trim();
        } catch (NoSuchFileException e) {
            throw new CallerException("token file " + TOKEN_FILE + " does not exist: run the selfjwt.kyma.edge_keys"
                + " role on this host or set SELFJWT_TOKEN_FILE");
        } catch (IOException e) {
            throw new CallerException("cannot read token file " + TOKEN_FILE + " (" + e + "): this user must be in"
                + " the token file's group (edge_keys_token_group)");
        }
        if (token.isEmpty()) {
            throw new CallerException("token file " + TOKEN_FILE + " is empty: run selfjwt-token as the key's owner");
        }
        return token;
    }

    static HttpResponse<String> get(String url, String token) throws CallerException {
        try {
            HttpRequest request = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(30))
                .header("Authorization", "Bearer " + token).GET().build();
            return CLIENT.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException | IllegalArgumentException e) {
            throw new CallerException("cannot reach " + url + ": " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CallerException("interrupted while calling " + url);
        }
    }

    static String call(String url) throws CallerException {
        String token = readToken();
        HttpResponse<String> response = get(url, token);
        if (response.statusCode() == 401) {
            String fresh = readToken();
            if (!fresh.equals(token)) {
                // The refresher replaced the token after it was read: retry once with the new one.
                response = get(url, fresh);
            }
        }
        int status = response.statusCode();
        String body = response.body().strip();
        String text = body.substring(0, Math.min(body.length(), 200));
        if (status == 401) {
            throw new CallerException(url + " answered 401 (" + text + "): the token in " + TOKEN_FILE + " is expired"
                + " or its key is not published; check that the refresher runs (selfjwt-token --json)");
        }
        if (status == 403) {
            throw new CallerException(url + " answered 403 (" + text + "): the token is valid but the API's rules do"
                + " not allow this call (audience, scopes, path or method)");
        }
        if (status < 200 || status >= 300) {
            throw new CallerException(url + " answered " + status + " (" + text + ")");
        }
        return response.body();
    }

    public static void main(String[] args) {
        if (args.length == 0) {
            System.err.println("usage: java Caller.java URL [URL ...]");
            System.exit(2);
        }
        try {
            for (String url : args) {
                System.out.println(call(url));
            }
        } catch (CallerException e) {
            System.err.println("caller: " + e.getMessage());
            System.exit(1);
        }
    }
}
