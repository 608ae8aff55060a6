package client

import (
	"net/url"
	"testing"
)

func TestOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://Auth.Example.com/oauth2-token", "https://auth.example.com:443"},
		{"https://auth.example.com:443/x", "https://auth.example.com:443"},
		{"http://auth.example.com/x", "http://auth.example.com:80"},
		{"HTTP://10.0.0.1:8080/x?y#z", "http://10.0.0.1:8080"},
		{"http://[::1]:8080/x", "http://[::1]:8080"},
		{"https://user:pw@auth.example.com/x", "https://auth.example.com:443"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := origin(u); got != tt.want {
			t.Errorf("origin(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
