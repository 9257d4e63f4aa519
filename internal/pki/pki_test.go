package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"
)

func testRequest() Request {
	return Request{
		ClusterName: "prod",
		Masters: []Master{
			{Name: "m1", IP: "10.0.0.1"},
			{Name: "m2", IP: "10.0.0.2"},
			{Name: "m3", IP: "10.0.0.3"},
		},
		ServiceIP: "10.96.0.1",
		ExtraSANs: []string{"api.prod.example", "10.0.0.100"},
	}
}

func mustCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	cert, err := parseCert(pemData)
	require.NoError(t, err)
	return cert
}

func ipStrings(in []net.IP) []string {
	out := make([]string, len(in))
	for i, ip := range in {
		out[i] = ip.String()
	}
	return out
}

func TestNewClusterPKILeaves(t *testing.T) {
	b, err := NewClusterPKI(testRequest())
	require.NoError(t, err)
	cas := map[string]KeyPair{CA: b.CA, EtcdCA: b.EtcdCA, FrontProxyCA: b.FrontProxyCA}
	for name, ca := range cas {
		cert := mustCert(t, ca.CertPEM)
		require.True(t, cert.IsCA, name)
		require.Equal(t, "prod-"+name, cert.Subject.CommonName)
		require.InDelta(t, DefaultCAValidity.Hours(), cert.NotAfter.Sub(cert.NotBefore).Hours(), backdate.Hours()+1, name)
	}

	etcdSANs := func(host, ip string) ([]string, []string) {
		return []string{host, "localhost"}, []string{ip, "127.0.0.1"}
	}
	apiDNS := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "api.prod.example"}
	apiIPs := []string{"10.96.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "127.0.0.1", "10.0.0.100"}
	e1DNS, e1IPs := etcdSANs("m1", "10.0.0.1")
	e3DNS, e3IPs := etcdSANs("m3", "10.0.0.3")
	serverClient := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

	tests := []struct {
		name   string
		issuer string
		cn     string
		org    []string
		usages []x509.ExtKeyUsage
		dns    []string
		ips    []string
	}{
		{APIServer, CA, "kube-apiserver", nil, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, apiDNS, apiIPs},
		{APIServerEtcdClient, EtcdCA, "kube-apiserver-etcd-client", nil, client, nil, nil},
		{APIServerKubeletClient, CA, "kube-apiserver-kubelet-client", []string{"system:masters"}, client, nil, nil},
		{FrontProxyClient, FrontProxyCA, "front-proxy-client", nil, client, nil, nil},
		{Admin, CA, "kok-admin", []string{"system:masters"}, client, nil, nil},
		{ControllerManager, CA, "system:kube-controller-manager", nil, client, nil, nil},
		{Scheduler, CA, "system:kube-scheduler", nil, client, nil, nil},
		{EtcdServer("m1"), EtcdCA, "m1", nil, serverClient, e1DNS, e1IPs},
		{EtcdPeer("m1"), EtcdCA, "m1", nil, serverClient, e1DNS, e1IPs},
		{EtcdServer("m3"), EtcdCA, "m3", nil, serverClient, e3DNS, e3IPs},
		{EtcdPeer("m3"), EtcdCA, "m3", nil, serverClient, e3DNS, e3IPs},
	}
	require.Len(t, b.Leaves, len(tests)+2, "7 shared certificates and 2 per master")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pair, ok := b.Leaves[tc.name]
			require.True(t, ok)
			cert, key, err := parsePair(pair)
			require.NoError(t, err, "certificate and key must match")
			require.NotNil(t, key)
			for caName, ca := range cas {
				roots := x509.NewCertPool()
				roots.AddCert(mustCert(t, ca.CertPEM))
				_, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: tc.usages})
				if caName == tc.issuer {
					require.NoError(t, err, "must verify against %s", caName)
				} else {
					require.Error(t, err, "must not verify against %s", caName)
				}
			}
			require.ElementsMatch(t, tc.usages, cert.ExtKeyUsage)
			require.Equal(t, tc.cn, cert.Subject.CommonName)
			require.Equal(t, tc.org, cert.Subject.Organization)
			require.Equal(t, tc.dns, cert.DNSNames)
			require.Equal(t, tc.ips, nilIfEmpty(ipStrings(cert.IPAddresses)))
			require.False(t, cert.IsCA)
			issuer, err := b.IssuerCert(tc.name)
			require.NoError(t, err)
			require.Equal(t, cas[tc.issuer].CertPEM, issuer)
			require.InDelta(t, DefaultLeafValidity.Hours(), cert.NotAfter.Sub(cert.NotBefore).Hours(), backdate.Hours()+1)
		})
	}

	key, err := parseKey(b.ServiceAccount.PrivateKeyPEM)
	require.NoError(t, err)
	block, _ := pem.Decode(b.ServiceAccount.PublicKeyPEM)
	require.NotNil(t, block)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	require.NoError(t, err)
	require.True(t, key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub), "public key must be the private key's")
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestMasterWithoutIP(t *testing.T) {
	req := testRequest()
	req.Masters = []Master{{Name: "etcd-0.etcd.kok-cluster-prod.svc"}}
	b, err := NewClusterPKI(req)
	require.NoError(t, err)
	cert := mustCert(t, b.Leaves[EtcdServer("etcd-0.etcd.kok-cluster-prod.svc")].CertPEM)
	require.Equal(t, []string{"127.0.0.1"}, ipStrings(cert.IPAddresses))
	require.Equal(t, []string{"etcd-0.etcd.kok-cluster-prod.svc", "localhost"}, cert.DNSNames)
}

func TestCompleteKeepsAFullBundle(t *testing.T) {
	b, err := NewClusterPKI(testRequest())
	require.NoError(t, err)
	again, changed, err := Complete(b, testRequest())
	require.NoError(t, err)
	require.False(t, changed)
	require.Equal(t, b, again)
}

func TestComplete(t *testing.T) {
	now := time.Now()
	base, err := NewClusterPKI(testRequest())
	require.NoError(t, err)
	other, err := NewClusterPKI(testRequest())
	require.NoError(t, err)

	withMaster := testRequest()
	withMaster.Masters = append(withMaster.Masters, Master{Name: "m4", IP: "10.0.0.4"})
	replaced := testRequest()
	replaced.Masters[2] = Master{Name: "m4", IP: "10.0.0.4"}
	moreSANs := testRequest()
	moreSANs.ExtraSANs = append(moreSANs.ExtraSANs, "api2.prod.example")

	tests := []struct {
		name string
		req  Request
		// edit changes a copy of base before Complete runs.
		edit func(b *Bundle)
		now  time.Time
		// reissued are the leaves expected to change; every other one, every authority and the
		// service-account key must be kept.
		reissued []string
		// newAuthorities are the authorities expected to change.
		newAuthorities []string
		dropped        []string
	}{
		{
			name:     "new master adds its etcd certificates and extends the apiserver SANs",
			req:      withMaster,
			reissued: []string{APIServer, EtcdServer("m4"), EtcdPeer("m4")},
		},
		{
			name:     "replaced master drops the old member's certificates",
			req:      replaced,
			reissued: []string{APIServer, EtcdServer("m4"), EtcdPeer("m4")},
			dropped:  []string{EtcdServer("m3"), EtcdPeer("m3")},
		},
		{
			name:     "new endpoint name reissues only the apiserver certificate",
			req:      moreSANs,
			reissued: []string{APIServer},
		},
		{
			name:     "fewer SANs wanted keeps the certificate",
			req:      func() Request { r := testRequest(); r.ExtraSANs = nil; return r }(),
			reissued: nil,
		},
		{
			name:     "missing leaf is issued alone",
			req:      testRequest(),
			edit:     func(b *Bundle) { delete(b.Leaves, Scheduler) },
			reissued: []string{Scheduler},
		},
		{
			name:     "corrupt leaf is reissued",
			req:      testRequest(),
			edit:     func(b *Bundle) { b.Leaves[Admin] = KeyPair{CertPEM: []byte("junk"), KeyPEM: b.Leaves[Admin].KeyPEM} },
			reissued: []string{Admin},
		},
		{
			name: "leaf with a foreign key is reissued",
			req:  testRequest(),
			edit: func(b *Bundle) {
				b.Leaves[Admin] = KeyPair{CertPEM: b.Leaves[Admin].CertPEM, KeyPEM: other.Leaves[Admin].KeyPEM}
			},
			reissued: []string{Admin},
		},
		{
			name:     "leaf signed by another authority is reissued",
			req:      testRequest(),
			edit:     func(b *Bundle) { b.Leaves[EtcdPeer("m2")] = other.Leaves[EtcdPeer("m2")] },
			reissued: []string{EtcdPeer("m2")},
		},
		{
			name:     "leaf of the wrong identity is reissued",
			req:      testRequest(),
			edit:     func(b *Bundle) { b.Leaves[ControllerManager] = b.Leaves[Scheduler] },
			reissued: []string{ControllerManager},
		},
		{
			name:     "leaves expiring within the renewal window are reissued, authorities kept",
			req:      testRequest(),
			now:      now.Add(DefaultLeafValidity - RenewBefore + time.Hour),
			reissued: allLeaves(base),
		},
		{
			name:           "an expiring authority is replaced with every certificate it signed",
			req:            testRequest(),
			now:            now.Add(DefaultCAValidity - RenewBefore + time.Hour),
			reissued:       allLeaves(base),
			newAuthorities: []string{CA, EtcdCA, FrontProxyCA},
		},
		{
			name:           "a missing authority is created and its leaves reissued",
			req:            testRequest(),
			edit:           func(b *Bundle) { b.FrontProxyCA = KeyPair{} },
			reissued:       []string{FrontProxyClient},
			newAuthorities: []string{FrontProxyCA},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := clone(base)
			if tc.edit != nil {
				tc.edit(in)
			}
			at := tc.now
			if at.IsZero() {
				at = now
			}
			out, changed, err := complete(in, tc.req, at)
			require.NoError(t, err)
			require.Equal(t, len(tc.reissued)+len(tc.newAuthorities)+len(tc.dropped) > 0, changed)

			for name, pair := range out.Leaves {
				if slices.Contains(tc.reissued, name) {
					require.NotEqual(t, in.Leaves[name].CertPEM, pair.CertPEM, "%s must be reissued", name)
				} else {
					require.Equal(t, in.Leaves[name], pair, "%s must be kept", name)
				}
			}
			for _, name := range tc.reissued {
				require.Contains(t, out.Leaves, name)
			}
			for _, name := range tc.dropped {
				require.NotContains(t, out.Leaves, name)
			}
			for name, pair := range map[string][2]KeyPair{CA: {in.CA, out.CA}, EtcdCA: {in.EtcdCA, out.EtcdCA}, FrontProxyCA: {in.FrontProxyCA, out.FrontProxyCA}} {
				if slices.Contains(tc.newAuthorities, name) {
					require.NotEqual(t, pair[0], pair[1], "%s must be new", name)
				} else {
					require.Equal(t, pair[0], pair[1], "%s must be kept", name)
				}
			}
			require.Equal(t, in.ServiceAccount, out.ServiceAccount)

			// Whatever Complete produced, running it again at the same time changes nothing.
			again, changed, err := complete(out, tc.req, at)
			require.NoError(t, err)
			require.False(t, changed)
			require.Equal(t, out, again)
		})
	}
}

func TestCompleteApiserverSANsAfterNewMaster(t *testing.T) {
	b, err := NewClusterPKI(testRequest())
	require.NoError(t, err)
	req := testRequest()
	req.Masters = append(req.Masters, Master{Name: "m4", IP: "10.0.0.4"})
	out, changed, err := Complete(b, req)
	require.NoError(t, err)
	require.True(t, changed)
	cert := mustCert(t, out.Leaves[APIServer].CertPEM)
	require.Contains(t, ipStrings(cert.IPAddresses), "10.0.0.4")
	require.NoError(t, cert.VerifyHostname("10.0.0.4"))
}

func TestCompleteRefusesBrokenKeys(t *testing.T) {
	base, err := NewClusterPKI(testRequest())
	require.NoError(t, err)
	other, err := NewClusterPKI(testRequest())
	require.NoError(t, err)
	tests := []struct {
		name string
		edit func(b *Bundle)
		want string
	}{
		{"CA key missing", func(b *Bundle) { b.CA.KeyPEM = nil }, "authority ca: no PEM private key"},
		{"etcd CA key foreign", func(b *Bundle) { b.EtcdCA.KeyPEM = other.EtcdCA.KeyPEM }, "authority etcd-ca: key does not match"},
		{"CA is a leaf", func(b *Bundle) { b.CA = b.Leaves[Admin] }, "authority ca: certificate is not a CA"},
		{"service-account key corrupt", func(b *Bundle) { b.ServiceAccount.PrivateKeyPEM = []byte("junk") }, "service-account key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := clone(base)
			tc.edit(in)
			_, _, err := Complete(in, testRequest())
			require.ErrorIs(t, err, ErrUnusableKey)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestRequestValidation(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *Request)
		want string
	}{
		{"no cluster name", func(r *Request) { r.ClusterName = "" }, "cluster name is empty"},
		{"bad cluster name", func(r *Request) { r.ClusterName = "Prod_1" }, `cluster name "Prod_1"`},
		{"no masters", func(r *Request) { r.Masters = nil }, "no masters"},
		{"bad master name", func(r *Request) { r.Masters[0].Name = "M 1" }, `master 0: name "M 1"`},
		{"duplicate master", func(r *Request) { r.Masters[1].Name = "m1" }, `master "m1" is listed twice`},
		{"bad master IP", func(r *Request) { r.Masters[0].IP = "10.0.0" }, `master "m1": IP "10.0.0"`},
		{"shared master IP", func(r *Request) { r.Masters[1].IP = "10.0.0.1" }, `master "m2": IP 10.0.0.1 is used`},
		{"no service IP", func(r *Request) { r.ServiceIP = "" }, `service IP ""`},
		{"SAN with port", func(r *Request) { r.ExtraSANs = []string{"api.example:6443"} }, `extra SAN "api.example:6443"`},
		{"leaf validity within renewal window", func(r *Request) { r.LeafValidity = RenewBefore }, "leaf validity"},
		{"CA shorter than leaves", func(r *Request) { r.CAValidity = 2 * DefaultLeafValidity; r.LeafValidity = 3 * DefaultLeafValidity }, "CA validity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := testRequest()
			tc.edit(&req)
			_, err := NewClusterPKI(req)
			require.ErrorIs(t, err, ErrInvalidRequest)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestKubeconfig(t *testing.T) {
	b, err := NewClusterPKI(testRequest())
	require.NoError(t, err)
	for user, cn := range map[string]string{Admin: "kok-admin", ControllerManager: "system:kube-controller-manager", Scheduler: "system:kube-scheduler"} {
		t.Run(user, func(t *testing.T) {
			data, err := b.Kubeconfig(user, "https://api.prod.example:6443")
			require.NoError(t, err)
			again, err := b.Kubeconfig(user, "https://api.prod.example:6443")
			require.NoError(t, err)
			require.Equal(t, data, again, "output must be stable so callers can compare it")

			cfg, err := clientcmd.Load(data)
			require.NoError(t, err)
			rest, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
			require.NoError(t, err)
			require.Equal(t, "https://api.prod.example:6443", rest.Host)
			require.Equal(t, b.CA.CertPEM, rest.CAData)
			require.Equal(t, b.Leaves[user].CertPEM, rest.CertData)
			require.Equal(t, b.Leaves[user].KeyPEM, rest.KeyData)
			require.Contains(t, cfg.AuthInfos, cn)
		})
	}
	for _, tc := range []struct{ user, server, want string }{
		{APIServer, "https://10.0.0.1:6443", `kubeconfig for "apiserver"`},
		{Admin, "http://10.0.0.1:6443", "not an https URL"},
		{Admin, "10.0.0.1:6443", "not an https URL"},
		{Admin, "https://10.0.0.9:6443", "10.0.0.9"},
		{Admin, "https://elsewhere.example", "elsewhere.example"},
	} {
		_, err := b.Kubeconfig(tc.user, tc.server)
		require.ErrorIs(t, err, ErrInvalidRequest, tc.server)
		require.ErrorContains(t, err, tc.want)
	}
	_, err = b.Kubeconfig(Admin, "https://127.0.0.1:6443")
	require.NoError(t, err, "loopback is always a SAN")
}

func TestFingerprint(t *testing.T) {
	b, err := NewClusterPKI(testRequest())
	require.NoError(t, err)
	fp, err := Fingerprint(b.CA.CertPEM)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(fp, "sha256:"))
	require.Len(t, fp, len("sha256:")+64)
	_, err = Fingerprint(b.CA.KeyPEM)
	require.Error(t, err)
}

func allLeaves(b *Bundle) []string {
	return slices.Collect(maps.Keys(b.Leaves))
}

func clone(b *Bundle) *Bundle {
	c := *b
	c.Leaves = maps.Clone(b.Leaves)
	return &c
}

func TestServiceIP(t *testing.T) {
	for cidr, want := range map[string]string{
		"10.96.0.0/12":  "10.96.0.1",
		"10.96.5.7/12":  "10.96.0.1",
		"fd00:10::/108": "fd00:10::1",
	} {
		got, err := ServiceIP(cidr)
		if err != nil || got != want {
			t.Errorf("ServiceIP(%q) = %q, %v; want %q", cidr, got, err, want)
		}
	}
	if _, err := ServiceIP("not-a-cidr"); err == nil {
		t.Error("ServiceIP accepted a bad CIDR")
	}
}
