package signing

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"
)

// TestClientKeyRules: client keys that would make verification expensive — an RSA
// modulus over MaxClientRSABits, an exponent other than 65537 — are refused like a
// short RSA key.
func TestClientKeyRules(t *testing.T) {
	odd := func(bits int) *big.Int {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits)))
		if err != nil {
			t.Fatal(err)
		}
		n.SetBit(n, bits-1, 1)
		return n.SetBit(n, 0, 1)
	}
	for name, tc := range map[string]struct {
		key *rsa.PublicKey
		ok  bool
	}{
		"2048, 65537": {&rsa.PublicKey{N: odd(2048), E: 65537}, true},
		"4096, 65537": {&rsa.PublicKey{N: odd(4096), E: 65537}, true},
		"1024":        {&rsa.PublicKey{N: odd(1024), E: 65537}, false},
		"8192":        {&rsa.PublicKey{N: odd(8192), E: 65537}, false},
		"e = 3":       {&rsa.PublicKey{N: odd(2048), E: 3}, false},
		"e = 2^31-1":  {&rsa.PublicKey{N: odd(2048), E: 1<<31 - 1}, false},
	} {
		t.Run(name, func(t *testing.T) {
			pemText, err := EncodePublicKeyPEM(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParsePublicKeyPEM(pemText)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrUnusableClientKey) {
				t.Fatalf("got %v, want ErrUnusableClientKey", err)
			}
		})
	}
}
