package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

var (
	serverUsage       = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientUsage       = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	serverClientUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

const (
	certBlock   = "CERTIFICATE"
	keyBlock    = "PRIVATE KEY"
	pubKeyBlock = "PUBLIC KEY"
)

// authority is a parsed CA, ready to sign.
type authority struct {
	pair KeyPair
	cert *x509.Certificate
	key  crypto.Signer
}

// keepOrCreateAuthority returns old when it is a usable CA that does not expire within
// RenewBefore, a new CA when old is empty or expiring, and an ErrUnusableKey error when old is
// present but broken. issued says a new one was made.
func keepOrCreateAuthority(name, cn string, old KeyPair, validity time.Duration, now time.Time) (*authority, bool, error) {
	if len(old.CertPEM) > 0 || len(old.KeyPEM) > 0 {
		cert, key, err := parsePair(old)
		if err == nil && (!cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0) {
			err = errors.New("certificate is not a CA")
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: authority %s: %w; remove it to issue a new one, which reissues every certificate it signed", ErrUnusableKey, name, err)
		}
		if now.Add(RenewBefore).Before(cert.NotAfter) {
			return &authority{pair: old, cert: cert, key: key}, false, nil
		}
	}
	key, err := newKey()
	if err != nil {
		return nil, false, fmt.Errorf("authority %s: %w", name, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, false, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, false, fmt.Errorf("create authority %s: %w", name, err)
	}
	pair, err := encodePair(der, key)
	if err != nil {
		return nil, false, fmt.Errorf("authority %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, false, fmt.Errorf("parse new authority %s: %w", name, err)
	}
	return &authority{pair: pair, cert: cert, key: key}, true, nil
}

// leafUsable reports whether old can stay as spec's certificate: intact, signed by ca for
// spec's usages, not expiring within RenewBefore, the same subject, and SANs covering spec's.
// Extra SANs are tolerated: a removed master's address does no harm, reissuing would.
func leafUsable(old KeyPair, spec leafSpec, ca *authority, now time.Time) bool {
	cert, _, err := parsePair(old)
	if err != nil || !now.Add(RenewBefore).Before(cert.NotAfter) {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: spec.usages}); err != nil {
		return false
	}
	if cert.Subject.CommonName != spec.cn || !slices.Equal(cert.Subject.Organization, spec.org) {
		return false
	}
	for _, u := range spec.usages {
		if !slices.Contains(cert.ExtKeyUsage, u) {
			return false
		}
	}
	for _, name := range spec.dns {
		if !slices.Contains(cert.DNSNames, name) {
			return false
		}
	}
	for _, ip := range spec.ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// issueLeaf signs a new certificate for spec. It never outlives its authority: a chain that
// expires earlier than its leaf fails at the authority's expiry anyway.
func issueLeaf(spec leafSpec, ca *authority, validity time.Duration, now time.Time) (KeyPair, error) {
	key, err := newKey()
	if err != nil {
		return KeyPair{}, fmt.Errorf("certificate %s: %w", spec.name, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return KeyPair{}, err
	}
	notAfter := now.Add(validity)
	if ca.cert.NotAfter.Before(notAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.cn, Organization: spec.org},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  spec.usages,
		DNSNames:     spec.dns,
		IPAddresses:  spec.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("create certificate %s: %w", spec.name, err)
	}
	pair, err := encodePair(der, key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("certificate %s: %w", spec.name, err)
	}
	return pair, nil
}

// keepOrCreateServiceAccountKey keeps a parseable private key (rewriting the public half from
// it) and creates one only when none exists: a new key would invalidate every token issued.
func keepOrCreateServiceAccountKey(old ServiceAccountKey) (ServiceAccountKey, bool, error) {
	sa := ServiceAccountKey{PrivateKeyPEM: old.PrivateKeyPEM}
	var key crypto.Signer
	var err error
	if len(old.PrivateKeyPEM) > 0 {
		if key, err = parseKey(old.PrivateKeyPEM); err != nil {
			return ServiceAccountKey{}, false, fmt.Errorf("%w: service-account key: %w; remove it to issue a new one, which invalidates every token", ErrUnusableKey, err)
		}
	} else {
		if key, err = newKey(); err != nil {
			return ServiceAccountKey{}, false, fmt.Errorf("service-account key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return ServiceAccountKey{}, false, fmt.Errorf("encode service-account key: %w", err)
		}
		sa.PrivateKeyPEM = pem.EncodeToMemory(&pem.Block{Type: keyBlock, Bytes: der})
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return ServiceAccountKey{}, false, fmt.Errorf("encode service-account public key: %w", err)
	}
	sa.PublicKeyPEM = pem.EncodeToMemory(&pem.Block{Type: pubKeyBlock, Bytes: pubDER})
	changed := !bytes.Equal(sa.PrivateKeyPEM, old.PrivateKeyPEM) || !bytes.Equal(sa.PublicKeyPEM, old.PublicKeyPEM)
	return sa, changed, nil
}

// Fingerprint is "sha256:" and the hex SHA-256 of the first certificate in certPEM: what
// identifies an authority in logs and workflow history without revealing anything secret.
func Fingerprint(certPEM []byte) (string, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ECDSA P-256 throughout: small keys and fast signatures, accepted by etcd, kube-apiserver
// (ES256 service-account tokens) and every Kubernetes client.
func newKey() (crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n, nil
}

func encodePair(der []byte, key crypto.Signer) (KeyPair, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode key: %w", err)
	}
	return KeyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: certBlock, Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: keyBlock, Bytes: keyDER}),
	}, nil
}

func parsePair(p KeyPair) (*x509.Certificate, crypto.Signer, error) {
	cert, err := parseCert(p.CertPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKey(p.KeyPEM)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, nil, errors.New("key does not match certificate")
	}
	return cert, key, nil
}

func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != certBlock {
		return nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != keyBlock {
		return nil, errors.New("no PEM private key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}
