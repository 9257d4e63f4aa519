package process

import (
	"fmt"

	"kok.dev/internal/pki"
)

// FilesFor picks from a cluster's PKI what one master needs. The controller-manager and the
// scheduler reach the apiserver on their own master (apiServerURL), so a master keeps its
// control loops running while another master is down.
func FilesFor(b *pki.Bundle, master, apiServerURL string) (Files, error) {
	names := []string{pki.EtcdServer(master), pki.EtcdPeer(master), pki.APIServer, pki.APIServerEtcdClient, pki.APIServerKubeletClient, pki.FrontProxyClient}
	kp := map[string]pki.KeyPair{}
	for _, n := range names {
		v, ok := b.Leaves[n]
		if !ok {
			return Files{}, fmt.Errorf("the PKI of cluster %s has no %s certificate", b.ClusterName, n)
		}
		kp[n] = v
	}
	etcdServer, etcdPeer := kp[pki.EtcdServer(master)], kp[pki.EtcdPeer(master)]
	api, apiEtcd, apiKubelet, proxy := kp[pki.APIServer], kp[pki.APIServerEtcdClient], kp[pki.APIServerKubeletClient], kp[pki.FrontProxyClient]
	kcm, err := b.Kubeconfig(pki.ControllerManager, apiServerURL)
	if err != nil {
		return Files{}, fmt.Errorf("controller-manager kubeconfig: %w", err)
	}
	sched, err := b.Kubeconfig(pki.Scheduler, apiServerURL)
	if err != nil {
		return Files{}, fmt.Errorf("scheduler kubeconfig: %w", err)
	}
	// The machine operator acts as the cluster's administrator: it owns kok's CRDs there and
	// cordons, labels and deletes Nodes. A narrower identity is listed in docs/design as left.
	operator, err := b.Kubeconfig(pki.Admin, apiServerURL)
	if err != nil {
		return Files{}, fmt.Errorf("machine operator kubeconfig: %w", err)
	}
	return Files{
		CA: string(b.CA.CertPEM), CAKey: string(b.CA.KeyPEM),
		EtcdCA:     string(b.EtcdCA.CertPEM),
		EtcdServer: string(etcdServer.CertPEM), EtcdServerKey: string(etcdServer.KeyPEM),
		EtcdPeer: string(etcdPeer.CertPEM), EtcdPeerKey: string(etcdPeer.KeyPEM),
		APIServer: string(api.CertPEM), APIServerKey: string(api.KeyPEM),
		APIServerEtcd: string(apiEtcd.CertPEM), APIServerEtcdKey: string(apiEtcd.KeyPEM),
		KubeletClient: string(apiKubelet.CertPEM), KubeletClientKey: string(apiKubelet.KeyPEM),
		FrontProxyCA:     string(b.FrontProxyCA.CertPEM),
		FrontProxyClient: string(proxy.CertPEM), FrontProxyClientKey: string(proxy.KeyPEM),
		ServiceAccountKey: string(b.ServiceAccount.PrivateKeyPEM), ServiceAccountPub: string(b.ServiceAccount.PublicKeyPEM),
		ControllerManagerKubeconfig: string(kcm), SchedulerKubeconfig: string(sched),
		OperatorKubeconfig: string(operator),
	}, nil
}
