package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// IssuerCluster is a second control plane on loopback acting as another cluster of a
// fleet ("cluster B"): its own ServiceAccount issuer and keys, whose discovery document
// and JWKS anyone may read (as a cluster that publishes its issuer does), so the first
// cluster's operator can trust it as an OAuthTrustedIssuer.
type IssuerCluster struct {
	// Env is the running control plane.
	Env *envtest.Environment
	// Config talks to it as an administrator.
	Config *rest.Config
	// Issuer is the `iss` of its ServiceAccount tokens: https://127.0.0.1:<port>/.
	Issuer string
	// JWKSURI is where its discovery document says its keys are.
	JWKSURI string
	// CAPEM is the certificate authority of its serving certificate (PEM).
	CAPEM string

	clientset *kubernetes.Clientset
}

// discoveryReader grants anyone, authenticated or not, the API server's own role
// system:service-account-issuer-discovery: GET /.well-known/openid-configuration and
// /openid/v1/jwks. Kubernetes' documented way to publish the issuer.
var discoveryReader = &rbacv1.ClusterRoleBinding{
	ObjectMeta: metav1.ObjectMeta{Name: "service-account-issuer-discovery-public"},
	RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
	Subjects: []rbacv1.Subject{
		{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:unauthenticated"},
		{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"},
	},
}

// StartIssuerCluster starts etcd and kube-apiserver on loopback (no CRDs), publishes
// its ServiceAccount issuer and reads its discovery document. Its jwks_uri is on
// 127.0.0.1 (--service-account-jwks-uri), as a cluster that publishes its issuer sets
// it to an address others reach; without it the API server names its advertise
// address.
func StartIssuerCluster(ctx context.Context) (_ *IssuerCluster, err error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	api := env.ControlPlane.GetAPIServer()
	api.SecurePort = port
	api.Configure().Set("service-account-jwks-uri", fmt.Sprintf("https://127.0.0.1:%d/openid/v1/jwks", port))
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		env.ControlPlaneStartTimeout = time.Minute // two busy cores: more than envtest's 20s
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start the issuer cluster: %w", err)
	}
	defer func() {
		if err != nil {
			_ = env.Stop()
		}
	}()
	c := &IssuerCluster{Env: env, Config: cfg, CAPEM: string(cfg.CAData)}
	if c.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("issuer cluster client: %w", err)
	}
	if _, err := c.clientset.RbacV1().ClusterRoleBindings().Create(ctx, discoveryReader, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("publish the issuer cluster's issuer discovery: %w", err)
	}
	raw, err := c.clientset.RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the issuer cluster's discovery document: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Issuer == "" {
		return nil, fmt.Errorf("the issuer cluster's discovery document %q names no issuer", raw)
	}
	c.Issuer, c.JWKSURI = doc.Issuer, doc.JWKSURI
	return c, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Stop stops the control plane.
func (c *IssuerCluster) Stop() error { return c.Env.Stop() }

// JWKS reads the cluster's ServiceAccount keys (what an OAuthTrustedIssuer's static
// jwks holds for a cluster whose keys nobody can fetch).
func (c *IssuerCluster) JWKS(ctx context.Context) ([]byte, error) {
	return c.clientset.RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
}

// ServiceAccount creates the namespace and the ServiceAccount unless they exist.
func (c *IssuerCluster) ServiceAccount(ctx context.Context, namespace, name string) error {
	_, err := c.clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s in the issuer cluster: %w", namespace, err)
	}
	_, err = c.clientset.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ServiceAccount %s/%s in the issuer cluster: %w", namespace, name, err)
	}
	return nil
}

// Token is a token of the ServiceAccount namespace/name (created if needed) for the
// audiences, valid for lifetime (at least 10 minutes: the API server's minimum), from
// the TokenRequest API, as `kubectl create token` gets it.
func (c *IssuerCluster) Token(ctx context.Context, namespace, name string, audiences []string, lifetime time.Duration) (string, error) {
	if err := c.ServiceAccount(ctx, namespace, name); err != nil {
		return "", err
	}
	tr, err := c.clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To(int64(lifetime / time.Second))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenRequest for %s/%s in the issuer cluster: %w", namespace, name, err)
	}
	if tr.Status.Token == "" {
		return "", errors.New("the issuer cluster returned no token")
	}
	return tr.Status.Token, nil
}

// AdminKubeconfig adds an administrator (system:masters) and returns a kubeconfig for
// it, for kubectl.
func (c *IssuerCluster) AdminKubeconfig() ([]byte, error) {
	user, err := c.Env.AddUser(envtest.User{Name: "cluster-b-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("add an administrator to the issuer cluster: %w", err)
	}
	return user.KubeConfig()
}
