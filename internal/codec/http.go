package codec

import (
	"net/http"
	"strings"

	"go.temporal.io/sdk/converter"
)

// maxRequestBytes bounds one /encode or /decode request. The Web UI sends the payloads of a
// page of history at a time and Temporal caps a payload at a few MiB, so this is generous while
// still refusing to buffer an unbounded body.
const maxRequestBytes = 64 << 20

// corsAllowedHeaders are the request headers the Temporal Web UI sends to a codec server:
// the namespace, and the user's token when the UI is set to pass it on.
var corsAllowedHeaders = strings.Join([]string{"Content-Type", "X-Namespace", "Authorization", "Authorization-Extras"}, ", ")

// NewHTTPHandler serves the Temporal codec-server protocol (POST /encode and /decode, also
// under a /{namespace}/ prefix as the Temporal CLI's --codec-endpoint templating produces) and
// GET /healthz.
//
// Browsers may call it only from allowedOrigins (exact scheme://host:port matches, e.g. the Web
// UI's http://127.0.0.1:8233). Requests carrying any other Origin are refused, so a page on
// another site cannot use a user's browser to decrypt. Requests without an Origin header (the
// Temporal CLI, curl) are served: reaching the listener is the access control for those.
func NewHTTPHandler(k *Keyring, allowedOrigins []string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	codecHandler := converter.NewPayloadCodecHTTPHandler(NewCodec(k))
	mux.Handle("/", http.MaxBytesHandler(codecHandler, maxRequestBytes))

	allowed := make(map[string]bool, len(allowedOrigins))
	for _, o := range allowedOrigins {
		allowed[o] = true
	}
	return &corsHandler{allowed: allowed, next: mux}
}

type corsHandler struct {
	allowed map[string]bool
	next    http.Handler
}

func (h *corsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		h.next.ServeHTTP(w, r)
		return
	}
	w.Header().Add("Vary", "Origin")
	if !h.allowed[origin] {
		http.Error(w, "origin "+origin+" is not allowed: start the codec server with --allow-origin "+origin, http.StatusForbidden)
		return
	}
	header := w.Header()
	header.Set("Access-Control-Allow-Origin", origin)
	// The Web UI's "include cross-origin credentials" setting sends cookies; without this the
	// browser would drop the response.
	header.Set("Access-Control-Allow-Credentials", "true")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		header.Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
		header.Set("Access-Control-Allow-Headers", corsAllowedHeaders)
		header.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.next.ServeHTTP(w, r)
}
