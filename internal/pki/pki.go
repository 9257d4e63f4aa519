package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	// DefaultCAValidity and DefaultLeafValidity apply when a Request leaves them zero.
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
	// RenewBefore is how close to its expiry a certificate is replaced: far enough ahead that a
	// cluster left alone for weeks never serves an expired certificate.
	RenewBefore = 30 * 24 * time.Hour
	// backdate tolerates clocks that lag the one that issued a certificate.
	backdate = time.Hour
)

// Names of the authorities and certificates of a Bundle. They are stable: storage (Secret
// names) derives from them.
const (
	CA           = "ca"
	EtcdCA       = "etcd-ca"
	FrontProxyCA = "front-proxy-ca"

	APIServer              = "apiserver"
	APIServerEtcdClient    = "apiserver-etcd-client"
	APIServerKubeletClient = "apiserver-kubelet-client"
	FrontProxyClient       = "front-proxy-client"
	Admin                  = "admin"
	ControllerManager      = "controller-manager"
	Scheduler              = "scheduler"
)

// EtcdServer names the serving certificate of the etcd member on a master.
func EtcdServer(master string) string { return "etcd-server-" + master }

// EtcdPeer names the certificate the etcd member on a master uses towards the other members.
func EtcdPeer(master string) string { return "etcd-peer-" + master }

// ErrInvalidRequest marks a Request that cannot produce certificates; retrying will not help.
var ErrInvalidRequest = errors.New("invalid PKI request")

// ErrUnusableKey marks an authority or signing key that is present but broken (unparseable,
// certificate and key not matching). Complete refuses to replace it, because a new one would
// silently invalidate everything that trusts the old one; removing it is a human decision.
var ErrUnusableKey = errors.New("unusable key")

// Master is one control-plane host: it runs an etcd member and a kube-apiserver.
type Master struct {
	// Name is the host name; it is a SAN of the member's etcd certificates.
	Name string
	// IP is the address the member is reached on. Empty when members are reached by name only
	// (pods of provider kok behind a headless Service).
	IP string
}

// Request describes the cluster whose PKI is wanted.
type Request struct {
	// ClusterName names the cluster in the authorities' subjects and in kubeconfigs.
	ClusterName string
	// Masters are the control-plane hosts, at least one.
	Masters []Master
	// ServiceIP is the first address of the service CIDR: the `kubernetes` Service VIP.
	ServiceIP string
	// ExtraSANs are further names or addresses of kube-apiserver, such as the control-plane
	// endpoint (load balancer or virtual IP) that kubeconfigs point at.
	ExtraSANs []string
	// CAValidity and LeafValidity are the lifetimes of new authorities and certificates.
	// Zero means DefaultCAValidity and DefaultLeafValidity.
	CAValidity   time.Duration
	LeafValidity time.Duration
}

// KeyPair is a certificate and its private key, both PEM (the key PKCS#8).
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// ServiceAccountKey signs (private) and verifies (public) service-account tokens; both PEM.
type ServiceAccountKey struct {
	PrivateKeyPEM []byte
	PublicKeyPEM  []byte
}

// Bundle is a cluster's whole PKI.
type Bundle struct {
	ClusterName string
	// CA signs kube-apiserver's serving certificate and every client certificate of the
	// cluster (its key also signs kubelet CSRs through kube-controller-manager).
	CA KeyPair
	// EtcdCA signs etcd's serving and peer certificates and kube-apiserver's client towards
	// etcd, so that no other identity of the cluster is accepted by etcd.
	EtcdCA KeyPair
	// FrontProxyCA signs the aggregation layer's client certificate only: whoever holds a
	// certificate from it may assert any user to extension API servers.
	FrontProxyCA   KeyPair
	ServiceAccount ServiceAccountKey
	// Leaves holds every other certificate by name (APIServer, EtcdServer(m), ...).
	Leaves map[string]KeyPair
}

// NewClusterPKI generates a whole new PKI for req.
func NewClusterPKI(req Request) (*Bundle, error) {
	b, _, err := complete(nil, req, time.Now())
	return b, err
}

// Complete returns a bundle for req that keeps from existing every authority, key and
// certificate that is still good, and issues only what is missing, expires within RenewBefore,
// no longer verifies against its authority, or whose SANs no longer cover req (a master
// replaced). Certificates of masters no longer in req are dropped. changed says whether the
// result differs from existing. existing may be nil.
//
// A new authority is created only when existing has none (or it is about to expire); every
// certificate it signs is then reissued. A present but broken authority or service-account key
// is an ErrUnusableKey error instead.
func Complete(existing *Bundle, req Request) (*Bundle, bool, error) {
	return complete(existing, req, time.Now())
}

func complete(existing *Bundle, req Request, now time.Time) (*Bundle, bool, error) {
	req, err := req.normalize()
	if err != nil {
		return nil, false, err
	}
	if existing == nil {
		existing = &Bundle{}
	}
	out := &Bundle{ClusterName: req.ClusterName, Leaves: map[string]KeyPair{}}
	changed := false

	authorities := map[string]*authority{}
	for _, c := range []struct {
		name string
		old  KeyPair
		dst  *KeyPair
	}{
		{CA, existing.CA, &out.CA},
		{EtcdCA, existing.EtcdCA, &out.EtcdCA},
		{FrontProxyCA, existing.FrontProxyCA, &out.FrontProxyCA},
	} {
		a, issued, err := keepOrCreateAuthority(c.name, req.ClusterName+"-"+c.name, c.old, req.CAValidity, now)
		if err != nil {
			return nil, false, err
		}
		authorities[c.name] = a
		*c.dst = a.pair
		changed = changed || issued
	}

	for _, spec := range req.leaves() {
		ca := authorities[spec.issuer]
		old, ok := existing.Leaves[spec.name]
		if ok && leafUsable(old, spec, ca, now) {
			out.Leaves[spec.name] = old
			continue
		}
		pair, err := issueLeaf(spec, ca, req.LeafValidity, now)
		if err != nil {
			return nil, false, err
		}
		out.Leaves[spec.name] = pair
		changed = true
	}
	for name := range existing.Leaves {
		if _, ok := out.Leaves[name]; !ok {
			changed = true
		}
	}

	sa, issued, err := keepOrCreateServiceAccountKey(existing.ServiceAccount)
	if err != nil {
		return nil, false, err
	}
	out.ServiceAccount = sa
	changed = changed || issued
	return out, changed, nil
}

// leafSpec is what one leaf certificate must say.
type leafSpec struct {
	name   string
	issuer string
	cn     string
	org    []string
	usages []x509.ExtKeyUsage
	dns    []string
	ips    []net.IP
}

var (
	loopback = net.IPv4(127, 0, 0, 1)
	// apiServerNames are how pods reach kube-apiserver through the `kubernetes` Service.
	apiServerNames = []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
)

// leaves lists every leaf certificate req needs, in a fixed order.
func (r Request) leaves() []leafSpec {
	apiDNS := slices.Clone(apiServerNames)
	apiIPs := []net.IP{net.ParseIP(r.ServiceIP)}
	for _, m := range r.Masters {
		if m.IP != "" {
			apiIPs = append(apiIPs, net.ParseIP(m.IP))
		}
	}
	apiIPs = append(apiIPs, loopback)
	for _, san := range r.ExtraSANs {
		if ip := net.ParseIP(san); ip != nil {
			apiIPs = append(apiIPs, ip)
		} else {
			apiDNS = append(apiDNS, san)
		}
	}

	specs := []leafSpec{
		{name: APIServer, issuer: CA, cn: "kube-apiserver", usages: serverUsage, dns: dedupe(apiDNS), ips: dedupeIPs(apiIPs)},
		{name: APIServerEtcdClient, issuer: EtcdCA, cn: "kube-apiserver-etcd-client", usages: clientUsage},
		// system:masters because a kubelet authorises kube-apiserver's calls (logs, exec) like
		// any other user's; the group needs no RBAC binding to exist in the new cluster first.
		{name: APIServerKubeletClient, issuer: CA, cn: "kube-apiserver-kubelet-client", org: []string{"system:masters"}, usages: clientUsage},
		// The name kube-apiserver's --requestheader-allowed-names accepts.
		{name: FrontProxyClient, issuer: FrontProxyCA, cn: "front-proxy-client", usages: clientUsage},
		{name: Admin, issuer: CA, cn: "kok-admin", org: []string{"system:masters"}, usages: clientUsage},
		// The user names the bootstrap RBAC policy grants these components' permissions to.
		{name: ControllerManager, issuer: CA, cn: "system:kube-controller-manager", usages: clientUsage},
		{name: Scheduler, issuer: CA, cn: "system:kube-scheduler", usages: clientUsage},
	}
	for _, m := range r.Masters {
		ips := []net.IP{loopback}
		if m.IP != "" {
			ips = []net.IP{net.ParseIP(m.IP), loopback}
		}
		dns := []string{m.Name, "localhost"}
		// etcd dials other members (and itself, for its gateway and health) with these
		// certificates too, so both carry client and server usage.
		specs = append(specs,
			leafSpec{name: EtcdServer(m.Name), issuer: EtcdCA, cn: m.Name, usages: serverClientUsage, dns: dns, ips: ips},
			leafSpec{name: EtcdPeer(m.Name), issuer: EtcdCA, cn: m.Name, usages: serverClientUsage, dns: dns, ips: ips},
		)
	}
	return specs
}

// normalize fills in defaults and refuses what cannot become a certificate.
func (r Request) normalize() (Request, error) {
	bad := func(format string, args ...any) (Request, error) {
		return Request{}, fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
	}
	if r.CAValidity == 0 {
		r.CAValidity = DefaultCAValidity
	}
	if r.LeafValidity == 0 {
		r.LeafValidity = DefaultLeafValidity
	}
	switch {
	case r.ClusterName == "":
		return bad("cluster name is empty")
	case len(validation.IsDNS1123Subdomain(r.ClusterName)) > 0:
		return bad("cluster name %q is not a DNS subdomain", r.ClusterName)
	case len(r.Masters) == 0:
		return bad("no masters")
	case net.ParseIP(r.ServiceIP) == nil:
		return bad("service IP %q is not an IP address", r.ServiceIP)
	case r.LeafValidity <= RenewBefore:
		// A shorter lifetime would count as expiring on every call and be reissued each time.
		return bad("leaf validity %s must be longer than the renewal window %s", r.LeafValidity, RenewBefore)
	case r.CAValidity < r.LeafValidity:
		return bad("CA validity %s is shorter than leaf validity %s", r.CAValidity, r.LeafValidity)
	}
	names, ips := map[string]bool{}, map[string]bool{}
	for i, m := range r.Masters {
		switch {
		case len(validation.IsDNS1123Subdomain(m.Name)) > 0:
			return bad("master %d: name %q is not a DNS subdomain", i, m.Name)
		case names[m.Name]:
			return bad("master %q is listed twice", m.Name)
		case m.IP != "" && net.ParseIP(m.IP) == nil:
			return bad("master %q: IP %q is not an IP address", m.Name, m.IP)
		case m.IP != "" && ips[net.ParseIP(m.IP).String()]:
			return bad("master %q: IP %s is used by another master", m.Name, m.IP)
		}
		names[m.Name] = true
		if m.IP != "" {
			ips[net.ParseIP(m.IP).String()] = true
		}
	}
	for _, san := range r.ExtraSANs {
		if net.ParseIP(san) == nil && len(validation.IsDNS1123Subdomain(san)) > 0 {
			return bad("extra SAN %q is neither an IP address nor a DNS name (give a host, without port or scheme)", san)
		}
	}
	return r, nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	return slices.DeleteFunc(s, func(v string) bool {
		if seen[v] {
			return true
		}
		seen[v] = true
		return false
	})
}

func dedupeIPs(s []net.IP) []net.IP {
	seen := map[string]bool{}
	return slices.DeleteFunc(s, func(ip net.IP) bool {
		k := ip.String()
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

// IssuerCert returns the certificate (PEM) of the authority that signed the named leaf, which
// is what the leaf's users must trust on the other side.
func (b *Bundle) IssuerCert(leaf string) ([]byte, error) {
	pair, ok := b.Leaves[leaf]
	if !ok {
		return nil, fmt.Errorf("no certificate %s", leaf)
	}
	cert, err := parseCert(pair.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", leaf, err)
	}
	for _, ca := range []KeyPair{b.CA, b.EtcdCA, b.FrontProxyCA} {
		caCert, err := parseCert(ca.CertPEM)
		if err == nil && cert.CheckSignatureFrom(caCert) == nil {
			return ca.CertPEM, nil
		}
	}
	return nil, fmt.Errorf("certificate %s is signed by none of the bundle's authorities", leaf)
}

// ServiceIP is the first address of a service CIDR: the `kubernetes` Service's VIP, which
// kube-apiserver's serving certificate must cover (Request.ServiceIP).
func ServiceIP(serviceCIDR string) (string, error) {
	p, err := netip.ParsePrefix(serviceCIDR)
	if err != nil {
		return "", fmt.Errorf("service CIDR %q: %w", serviceCIDR, err)
	}
	return p.Masked().Addr().Next().String(), nil
}
