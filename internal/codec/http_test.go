package codec_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"kok.dev/internal/codec"
)

const uiOrigin = "http://127.0.0.1:8233"

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(codec.NewHTTPHandler(testKeyring(t, "a", "a"), []string{uiOrigin}))
	t.Cleanup(srv.Close)
	return srv
}

// reply is a read and closed response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func post(t *testing.T, url, origin string, payloads []*commonpb.Payload) reply {
	t.Helper()
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "kok")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return do(t, req)
}

func readPayloads(t *testing.T, r reply) []*commonpb.Payload {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	// The Web UI parses the response as plain JSON, so check it as such, not only as protojson.
	var raw map[string]any
	require.NoError(t, json.Unmarshal(r.body, &raw))
	require.Contains(t, raw, "payloads")
	var out commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(r.body, &out))
	return out.Payloads
}

func TestHTTPEncodeDecode(t *testing.T) {
	srv := newTestServer(t)
	in := plainPayload(t, secret)

	encoded := readPayloads(t, post(t, srv.URL+"/encode", uiOrigin, []*commonpb.Payload{in}))
	require.Len(t, encoded, 1)
	require.Equal(t, codec.EncodingEncrypted, string(encoded[0].Metadata[converter.MetadataEncoding]))
	require.NotContains(t, string(encoded[0].Data), "s3cr3t")

	r := post(t, srv.URL+"/decode", uiOrigin, encoded)
	require.Equal(t, uiOrigin, r.header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "true", r.header.Get("Access-Control-Allow-Credentials"))
	decoded := readPayloads(t, r)
	require.Len(t, decoded, 1)
	var got string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(decoded[0], &got))
	require.Equal(t, secret, got)

	// The Temporal CLI templates the namespace into the path and sends no Origin.
	decoded = readPayloads(t, post(t, srv.URL+"/kok/decode", "", encoded))
	require.Len(t, decoded, 1)
}

func TestHTTPDecodeErrorIsReported(t *testing.T) {
	srv := newTestServer(t)
	other := httptest.NewServer(codec.NewHTTPHandler(testKeyring(t, "b", "b"), nil))
	t.Cleanup(other.Close)
	encoded := readPayloads(t, post(t, other.URL+"/encode", "", []*commonpb.Payload{plainPayload(t, secret)}))

	r := post(t, srv.URL+"/decode", "", encoded)
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, string(r.body), `key "b"`)
}

func preflight(t *testing.T, url, origin string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, url, nil)
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
	return do(t, req)
}

func TestHTTPCORSPreflight(t *testing.T) {
	srv := newTestServer(t)

	r := preflight(t, srv.URL+"/decode", uiOrigin)
	require.Equal(t, http.StatusNoContent, r.status)
	require.Equal(t, uiOrigin, r.header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "true", r.header.Get("Access-Control-Allow-Credentials"))
	require.Contains(t, r.header.Get("Access-Control-Allow-Methods"), "POST")
	allowHeaders := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
	require.Contains(t, allowHeaders, "content-type")
	require.Contains(t, allowHeaders, "x-namespace")

	r = preflight(t, srv.URL+"/decode", "http://evil.example")
	require.Equal(t, http.StatusForbidden, r.status)
	require.Empty(t, r.header.Get("Access-Control-Allow-Origin"))

	// A disallowed origin cannot use the endpoints directly either.
	r = post(t, srv.URL+"/decode", "http://evil.example", nil)
	require.Equal(t, http.StatusForbidden, r.status)
	require.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
}

func TestHTTPHealthzAndUnknownPaths(t *testing.T) {
	srv := newTestServer(t)
	get := func(path string) reply {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		return do(t, req)
	}

	require.Equal(t, http.StatusOK, get("/healthz").status)
	require.Equal(t, http.StatusNotFound, get("/decode").status)
	require.Equal(t, http.StatusNotFound, post(t, srv.URL+"/other", "", nil).status)
}
