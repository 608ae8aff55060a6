package client

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Names of the files in the client's Secret volume: the keys of the Secret the
// operator generates.
const (
	fileClientID     = "client_id"
	fileClientSecret = "client_secret"
	filePrivateKey   = "private_key"
	fileKeyID        = "key_id"
	fileTokenURL     = "token_url"
	fileIssuer       = "issuer"
)

// dataLink is the symlink the kubelet swaps atomically to publish a new version of a
// Secret (or projected) volume: <dir>/..data -> ..<timestamp>/, and every file
// <dir>/<key> -> ..data/<key>.
const dataLink = "..data"

// credentials are the contents of the client's Secret volume at one moment.
type credentials struct {
	clientID, tokenURL, issuer string
	clientSecret               string
	privateKey                 []byte
	keyID                      string
}

// readCredentials reads the Secret volume in dir. A volume written by the kubelet is
// read as one version: the files are read below the directory that ..data names, and
// read again if ..data was swapped meanwhile, so a client_secret or a private_key and
// its key_id never mix two versions. A plain directory is read as it is.
func readCredentials(dir string) (credentials, error) {
	const attempts = 5
	for range attempts {
		version, err := os.Readlink(filepath.Join(dir, dataLink))
		if err != nil {
			return readVersion(dir)
		}
		if !filepath.IsAbs(version) {
			version = filepath.Join(dir, version)
		}
		c, err := readVersion(version)
		if again, _ := os.Readlink(filepath.Join(dir, dataLink)); again != "" {
			if !filepath.IsAbs(again) {
				again = filepath.Join(dir, again)
			}
			if again != version {
				continue // swapped while we read: read the new version
			}
		}
		return c, err
	}
	return credentials{}, fmt.Errorf("read %s: the volume changed %d times while it was read", dir, attempts)
}

func readVersion(dir string) (credentials, error) {
	var c credentials
	var err error
	if c.clientID, err = readText(dir, fileClientID, true); err != nil {
		return c, err
	}
	if c.tokenURL, err = readText(dir, fileTokenURL, true); err != nil {
		return c, err
	}
	if c.issuer, err = readText(dir, fileIssuer, false); err != nil {
		return c, err
	}
	if c.clientSecret, err = readText(dir, fileClientSecret, false); err != nil {
		return c, err
	}
	if c.keyID, err = readText(dir, fileKeyID, false); err != nil {
		return c, err
	}
	if c.privateKey, err = readFile(dir, filePrivateKey, false); err != nil {
		return c, err
	}
	return c, nil
}

// readText reads a text file, without surrounding white space (a file written by
// hand often ends with a newline).
func readText(dir, name string, required bool) (string, error) {
	b, err := readFile(dir, name, required)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if required && s == "" {
		return "", fmt.Errorf("%s is empty", filepath.Join(dir, name))
	}
	return s, nil
}

// maxFileSize bounds what is read from a mounted file (a Secret holds at most 1 MiB).
const maxFileSize = 1 << 20

func readFile(dir, name string, required bool) ([]byte, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		if !required && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return b, nil
}
