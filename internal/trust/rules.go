package trust

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// CEL is github.com/google/cel-go, the library the Kubernetes API server evaluates its
// own claimValidationRules with, used directly: k8s.io/apiserver/pkg/cel would bring
// the API server's dependencies (etcd's client, OpenTelemetry, its admission
// machinery) into the manager for one environment of two variables. The version is
// the one k8s.io/apiserver v0.37 pins, so the two never disagree on it.

// Limits of claimValidationRules expressions.
const (
	// MaxExpressionCost is the most an expression may cost, as CEL's estimator sees it
	// when the issuer is reconciled (worst case over every token the server accepts),
	// and as CEL counts it when evaluated per request. A cost unit is roughly one
	// step of the interpreter; 100,000 of them are a fraction of a millisecond.
	MaxExpressionCost = 100_000
	// maxTokenBytes bounds every value an expression sees: the token's claims come
	// from a JWT of at most 8 KiB (the token server refuses longer ones).
	maxTokenBytes = 8 << 10
)

// rule is one compiled claimValidationRules entry.
type rule struct {
	// claim and value: the claim must be the string value (a claim rule).
	claim, value string
	// program is the compiled expression (an expression rule); nil for a claim rule.
	program cel.Program
	// name is how messages name the rule: claimValidationRules[i], with its message.
	name string
}

// celEnv is the one CEL environment of claimValidationRules: `claims` (the token's
// claims) and `client` (`client.namespace` and `client.name`: the OAuthClient the
// token would authenticate; `namespace` alone is a reserved word of CEL), with CEL's
// standard library and the string extensions, numbers compared across types (JSON
// numbers are doubles).
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("client", cel.MapType(cel.StringType, cel.StringType)),
		cel.CrossTypeNumericComparisons(true),
		// The latest version: it gives every string function its cost, which the
		// estimator and the runtime limit need (version 2 left replace, split, indexOf
		// and the rest at about 1 unit, however long the strings).
		ext.Strings(),
	)
})

// compileRules compiles an issuer's claimValidationRules; the error names the first
// rule that does not compile, does not return a bool, or costs more than
// MaxExpressionCost.
func compileRules(specs []oauthv1alpha1.ClaimValidationRule) ([]rule, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	rules := make([]rule, 0, len(specs))
	for i, s := range specs {
		r := rule{name: fmt.Sprintf("claimValidationRules[%d]", i)}
		if s.Message != "" {
			r.name += " (" + s.Message + ")"
		}
		if s.Expression == "" {
			r.claim, r.value = s.Claim, s.RequiredValue
			rules = append(rules, r)
			continue
		}
		if r.program, err = compileExpression(env, s.Expression); err != nil {
			return nil, fmt.Errorf("claimValidationRules[%d]: %w", i, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func compileExpression(env *cel.Env, expr string) (cel.Program, error) {
	ast, issues := env.Compile(expr)
	if issues.Err() != nil {
		return nil, fmt.Errorf("does not compile: %s", strings.TrimSpace(issues.Err().Error()))
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return nil, fmt.Errorf("returns %s, not a bool", ast.OutputType())
	}
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return nil, fmt.Errorf("cost cannot be estimated: %w", err)
	}
	if est.Max > MaxExpressionCost {
		return nil, fmt.Errorf("costs too much: CEL estimates up to %d, the limit is %d (iterate over fewer claims, or over smaller values)", est.Max, MaxExpressionCost)
	}
	prg, err := env.Program(ast, cel.CostLimit(MaxExpressionCost))
	if err != nil {
		return nil, fmt.Errorf("does not compile: %w", err)
	}
	return prg, nil
}

// sizeEstimator tells CEL's cost estimator how large the values of an expression can
// be: every value whose size CEL cannot see (the claims map, a claim's string or list)
// comes from a token of at most 8 KiB, so has at most that many entries or characters.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: maxTokenBytes}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// ErrRuleFailed wraps the reason a token's claims fail an issuer's rules.
var ErrRuleFailed = errors.New("claim validation rule failed")

// checkRules evaluates the rules on a token's claims for the client namespace/name:
// nil when all hold, else an error (wrapping ErrRuleFailed) naming the first that does
// not. An expression that errs (a missing claim, a type mismatch) or runs over its
// cost limit fails.
func checkRules(rules []rule, claims map[string]any, namespace, name string) error {
	var vars map[string]any
	for i := range rules {
		r := &rules[i]
		if r.program == nil {
			if v, ok := claims[r.claim].(string); !ok || v != r.value {
				return fmt.Errorf("%w: %s: claim %q is not %q", ErrRuleFailed, r.name, r.claim, r.value)
			}
			continue
		}
		if vars == nil {
			vars = map[string]any{"claims": claims, "client": map[string]string{"namespace": namespace, "name": name}}
		}
		out, _, err := r.program.Eval(vars)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrRuleFailed, r.name, err)
		}
		if out != types.True {
			return fmt.Errorf("%w: %s is false", ErrRuleFailed, r.name)
		}
	}
	return nil
}
