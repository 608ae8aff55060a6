package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// certValidity is the lifetime of every certificate of the node: a run is short, and
// each run makes new ones.
const certValidity = 30 * 24 * time.Hour

// ca signs the node's certificates.
type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
	dir  string
}

func newCA(dir string) (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "oauth-client-operator local cluster CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	c := &ca{cert: cert, key: key, dir: dir}
	return c, c.write("ca", der, key)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// certSpec is one leaf certificate.
type certSpec struct {
	name   string // file name: <name>.crt, <name>.key
	cn     string
	orgs   []string
	dns    []string
	ips    []net.IP
	server bool
	client bool
}

// issue writes <name>.crt and <name>.key signed by the CA.
func (c *ca) issue(s certSpec) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: s.cn, Organization: s.orgs},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     s.dns,
		IPAddresses:  s.ips,
	}
	if s.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if s.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return fmt.Errorf("certificate %s: %w", s.name, err)
	}
	return c.write(s.name, der, key)
}

func (c *ca) write(name string, der []byte, key crypto.Signer) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

func (c *ca) file(name string) string { return filepath.Join(c.dir, name) }

// kubeconfig writes a kubeconfig for the client certificate <name> to path.
func (c *ca) kubeconfig(path, server, name string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: c.file("ca.crt")}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: c.file(name + ".crt"), ClientKey: c.file(name + ".key")}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name}
	cfg.CurrentContext = "local"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return err
	}
	return nil
}

// serviceAccountKey writes the ServiceAccount token signing key (RSA, as most clusters
// use) and its public half.
func serviceAccountKey(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// writePKI makes the CA, every certificate and kubeconfig of the node. The admin
// kubeconfig (for users and tests) embeds its certificates, so it works from anywhere
// on this machine while the node runs.
func writePKI(p paths, n netPlan) (*ca, error) {
	if err := os.MkdirAll(p.pki, 0o700); err != nil {
		return nil, err
	}
	c, err := newCA(p.pki)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	specs := []certSpec{
		{name: "apiserver", cn: "kube-apiserver", server: true,
			dns: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + dnsDomain, "localhost", host},
			ips: []net.IP{n.nodeIP, n.apiServiceIP, net.IPv4(127, 0, 0, 1)}},
		{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true},
		{name: "admin", cn: "admin", orgs: []string{"system:masters"}, client: true},
		{name: "controller-manager", cn: "system:kube-controller-manager", client: true},
		{name: "scheduler", cn: "system:kube-scheduler", client: true},
		{name: "kube-proxy", cn: "system:kube-proxy", client: true},
		{name: "kubelet-client", cn: "system:node:" + nodeName, orgs: []string{"system:nodes"}, client: true},
		{name: "kubelet", cn: nodeName, server: true, dns: []string{nodeName, host}, ips: []net.IP{n.nodeIP}},
	}
	for _, s := range specs {
		if err := c.issue(s); err != nil {
			return nil, err
		}
	}
	if err := serviceAccountKey(p.pki); err != nil {
		return nil, err
	}
	server := "https://" + net.JoinHostPort(n.nodeIP.String(), "6443")
	for _, name := range []string{"controller-manager", "scheduler", "kube-proxy", "kubelet-client"} {
		if err := c.kubeconfig(filepath.Join(p.pki, name+".kubeconfig"), server, name); err != nil {
			return nil, err
		}
	}
	// The admin kubeconfig with the certificates inline.
	cfg := clientcmdapi.NewConfig()
	caPEM, _ := os.ReadFile(c.file("ca.crt"))
	crt, _ := os.ReadFile(c.file("admin.crt"))
	key, _ := os.ReadFile(c.file("admin.key"))
	cfg.Clusters["oauth-local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["oauth-local-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts["oauth-local"] = &clientcmdapi.Context{Cluster: "oauth-local", AuthInfo: "oauth-local-admin"}
	cfg.CurrentContext = "oauth-local"
	return c, clientcmd.WriteToFile(*cfg, p.kubecfg)
}
