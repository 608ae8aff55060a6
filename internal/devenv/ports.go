package devenv

import (
	"fmt"
	"net"
)

// Roles of the ports Start needs, as named in a PortInUseError.
const (
	RoleToken   = "token server"
	RoleAPI     = "example API"
	RoleMetrics = "manager metrics"
	RoleProbe   = "manager health probes"
)

// PortInUseError says that a port Start needs on 127.0.0.1 is taken.
type PortInUseError struct {
	Role string // RoleToken, RoleAPI, RoleMetrics or RoleProbe
	Port int
	Err  error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d on 127.0.0.1 (%s) is not free: %v", e.Port, e.Role, e.Err)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

type portRequest struct {
	Role string
	Port *int
}

// reservePorts checks that every requested port can be listened on at 127.0.0.1, and
// picks a free port for each 0. Everything is checked before anything starts; the
// ports are released again for the children.
func reservePorts(reqs []*portRequest) error {
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	seen := map[int]string{}
	for _, r := range reqs {
		if *r.Port < 0 || *r.Port > 65535 {
			return fmt.Errorf("port %d (%s) is not a port number", *r.Port, r.Role)
		}
		if other, ok := seen[*r.Port]; ok && *r.Port != 0 {
			return fmt.Errorf("port %d is given for both the %s and the %s", *r.Port, other, r.Role)
		}
		l, err := net.Listen("tcp", hostPort(*r.Port))
		if err != nil {
			return &PortInUseError{Role: r.Role, Port: *r.Port, Err: err}
		}
		listeners = append(listeners, l)
		*r.Port = l.Addr().(*net.TCPAddr).Port
		seen[*r.Port] = r.Role
	}
	return nil
}

// FreePort returns a port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
