package pki

import (
	"fmt"
	"net/url"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig returns a kubeconfig that reaches server as user, one of Admin, ControllerManager
// or Scheduler, with the certificates embedded so the file works wherever it is copied. The
// output depends only on the bundle and the arguments, so callers can compare it with what
// they stored. server must be an https URL whose host the apiserver certificate covers.
func (b *Bundle) Kubeconfig(user, server string) ([]byte, error) {
	switch user {
	case Admin, ControllerManager, Scheduler:
	default:
		return nil, fmt.Errorf("%w: kubeconfig for %q: only %s, %s and %s have one", ErrInvalidRequest, user, Admin, ControllerManager, Scheduler)
	}
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: kubeconfig server %q is not an https URL", ErrInvalidRequest, server)
	}
	serving, ok := b.Leaves[APIServer]
	if !ok {
		return nil, fmt.Errorf("kubeconfig for %s: bundle has no %s certificate", user, APIServer)
	}
	servingCert, err := parseCert(serving.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: %s certificate: %w", user, APIServer, err)
	}
	// Checked here, because otherwise the first client to use the file finds out.
	if err := servingCert.VerifyHostname(u.Hostname()); err != nil {
		return nil, fmt.Errorf("%w: kubeconfig server %q: %w", ErrInvalidRequest, server, err)
	}
	pair, ok := b.Leaves[user]
	if !ok {
		return nil, fmt.Errorf("kubeconfig for %s: bundle has no %s certificate", user, user)
	}
	cert, err := parseCert(pair.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: %w", user, err)
	}

	authInfo := cert.Subject.CommonName
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[b.ClusterName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: b.CA.CertPEM}
	cfg.AuthInfos[authInfo] = &clientcmdapi.AuthInfo{ClientCertificateData: pair.CertPEM, ClientKeyData: pair.KeyPEM}
	cfg.Contexts[b.ClusterName] = &clientcmdapi.Context{Cluster: b.ClusterName, AuthInfo: authInfo}
	cfg.CurrentContext = b.ClusterName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: %w", user, err)
	}
	return data, nil
}
