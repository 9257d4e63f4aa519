package codecserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"kok.dev/internal/codec"
	"kok.dev/internal/tclient"
)

// DefaultListen is where `kok dev up` expects the codec server; the Web UI it starts is
// configured with this endpoint.
const DefaultListen = "127.0.0.1:8234"

// DefaultAllowedOrigins are the two names a browser may use for the local Web UI.
var DefaultAllowedOrigins = []string{"http://127.0.0.1:8233", "http://localhost:8233"}

// shutdownTimeout bounds how long in-flight decode requests may finish after SIGINT/SIGTERM.
const shutdownTimeout = 10 * time.Second

type serverOptions struct {
	keyFile string
	listen  string
	origins []string
}

// NewCommand returns `kok codec-server`.
func NewCommand() *cobra.Command {
	o := serverOptions{}
	cmd := &cobra.Command{
		Use:   "codec-server",
		Short: "Decrypt kok's encrypted Temporal payloads for the Web UI and the Temporal CLI",
		Long: `Serve the Temporal codec-server protocol with kok's payload key file.

kok processes started with --codec-key-file encrypt every workflow input, result, memo and
failure message (AES-256-GCM) before it reaches Temporal, so the Web UI and the Temporal CLI
show only "binary/encrypted" payloads. This server holds the same key file and answers
POST /decode and POST /encode for them; GET /healthz says whether it is up.

Anyone who can reach this server can decrypt. Keep it on a loopback address, or behind a proxy
that authenticates users, and allow only the Web UI's origin.

Point the Web UI at it, either for everyone in the ui-server config:
    codec:
      endpoint: http://127.0.0.1:8234
      includeCredentials: false      # true if a proxy in front needs cookies
or for yourself in the Web UI's Codec Server settings (stored in your browser).
The browser calls this server from the Web UI's page, so that page's origin (scheme://host:port
as in the address bar) must be given with --allow-origin.

Point the Temporal CLI at it:
    temporal workflow show --workflow-id <id> --codec-endpoint http://127.0.0.1:8234

The key file is read once at start: restart this server after ` + "`kok codec-key rotate`" + `.`,
		Example: `  # Serve a key file for a Web UI on this machine (kok dev up already serves its own key)
  kok codec-server --key-file /etc/kok/codec-keys.json

  # Serve a Web UI at https://temporal.example.com, listening on all interfaces
  kok codec-server --key-file /etc/kok/codec-keys.json --listen :8234 \
      --allow-origin https://temporal.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.keyFile, "key-file", os.Getenv(tclient.EnvCodecKeyFile),
		"the key file the kok processes use as --codec-key-file (env "+tclient.EnvCodecKeyFile+")")
	f.StringVar(&o.listen, "listen", DefaultListen,
		"host:port to serve on; port 0 picks a free port (the address is printed)")
	f.StringSliceVar(&o.origins, "allow-origin", DefaultAllowedOrigins,
		"origin (scheme://host[:port]) of a Web UI allowed to call this server from a browser; repeatable")
	return cmd
}

func serve(ctx context.Context, out io.Writer, o serverOptions) error {
	if o.keyFile == "" {
		return fmt.Errorf("--key-file is required (or set %s): give the key file the kok processes use", tclient.EnvCodecKeyFile)
	}
	keys, err := codec.LoadKeyring(o.keyFile)
	if err != nil {
		return fmt.Errorf("--key-file: %w", err)
	}
	origins, err := parseOrigins(o.origins)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	srv := &http.Server{
		Handler:           codec.NewHTTPHandler(keys, origins),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	_, _ = fmt.Fprintf(out, "codec server listening on http://%s\n", ln.Addr())
	_, _ = fmt.Fprintf(out, "  keys: %s (active %s)\n", strings.Join(keys.KeyIDs(), ", "), keys.ActiveKeyID())
	_, _ = fmt.Fprintf(out, "  browsers allowed from: %s\n", strings.Join(origins, ", "))

	select {
	case err := <-served:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("stop codec server: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	_, _ = fmt.Fprintln(out, "codec server stopped")
	return nil
}

// parseOrigins checks that each origin is what a browser sends in its Origin header, since
// anything else (a path, a trailing slash kept by copy and paste) would never match.
func parseOrigins(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, raw := range in {
		origin := strings.TrimSuffix(raw, "/")
		u, err := url.Parse(origin)
		if err != nil {
			return nil, fmt.Errorf("--allow-origin %q: %w", raw, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("--allow-origin %q is not an origin: want scheme://host[:port] as in the Web UI's address bar, e.g. http://127.0.0.1:8233", raw)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}
