package main

import (
	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
)

// clusterBKubeconfig is the ready line's cluster_b_kubeconfig: cluster B's kubeconfig,
// or "" without cluster B.
func clusterBKubeconfig(env *devenv.Env) string {
	if env.ClusterB == nil {
		return ""
	}
	return env.ClusterB.Kubeconfig
}

// writeClusterBGuide shows how a workload of another cluster gets a token with its own
// ServiceAccount token: a token of cluster B exchanged (RFC 8693) for an access token.
func writeClusterBGuide(p func(string, ...any), env *devenv.Env, curl string) {
	if env.ClusterB == nil {
		return
	}
	p("  # another cluster: cluster B (a second control plane) is trusted as OAuthTrustedIssuer %s;", devenv.ClusterBIssuer)
	p("  # its ServiceAccount %s/%s gets tokens for shop.%s with its own token, no secret at all",
		devenv.SampleNamespace, devenv.ClusterBServiceAccount, devenv.ClusterBClient)
	p("  B_TOKEN=$(kubectl --kubeconfig %s -n %s create token %s --audience %s)",
		shellQuote(env.ClusterB.Kubeconfig), devenv.SampleNamespace, devenv.ClusterBServiceAccount, env.Issuer)
	p(`  %s -X POST %s -d grant_type=%s \`, curl, env.TokenURL, tokenserver.GrantTokenExchange)
	p(`    -d subject_token_type=%s --data-urlencode subject_token="$B_TOKEN"`, tokenserver.TokenTypeJWT)
	p("")
}
