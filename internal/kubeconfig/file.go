package kubeconfig

import (
	"encoding/json"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// The subset of the kubeconfig format that is read. Refused fields are
// decoded only to be detected.
type (
	fileFormat struct {
		CurrentContext string `json:"current-context"`
		Clusters       []struct {
			Name    string      `json:"name"`
			Cluster fileCluster `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			Name string   `json:"name"`
			User fileUser `json:"user"`
		} `json:"users"`
		Contexts []struct {
			Name    string      `json:"name"`
			Context fileContext `json:"context"`
		} `json:"contexts"`
	}
	fileCluster struct {
		Server                   string `json:"server"`
		CertificateAuthority     string `json:"certificate-authority"`
		CertificateAuthorityData string `json:"certificate-authority-data"`
		InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
		TLSServerName            string `json:"tls-server-name"`
		ProxyURL                 string `json:"proxy-url"`
	}
	fileUser struct {
		Token                 string          `json:"token"`
		TokenFile             string          `json:"tokenFile"`
		ClientCertificate     string          `json:"client-certificate"`
		ClientCertificateData string          `json:"client-certificate-data"`
		ClientKey             string          `json:"client-key"`
		ClientKeyData         string          `json:"client-key-data"`
		AuthProvider          json.RawMessage `json:"auth-provider"`
		Exec                  *fileExec       `json:"exec"`
		Username              json.RawMessage `json:"username"`
		Password              json.RawMessage `json:"password"`
		As                    json.RawMessage `json:"as"`
		AsUID                 json.RawMessage `json:"as-uid"`
		AsGroups              json.RawMessage `json:"as-groups"`
		AsUserExtra           json.RawMessage `json:"as-user-extra"`
	}
	fileExec struct {
		Command string   `json:"command"`
		Args    []string `json:"args"`
		Env     []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"env"`
		APIVersion         string `json:"apiVersion"`
		InstallHint        string `json:"installHint"`
		ProvideClusterInfo bool   `json:"provideClusterInfo"`
		InteractiveMode    string `json:"interactiveMode"`
	}
	fileContext struct {
		Cluster   string `json:"cluster"`
		User      string `json:"user"`
		Namespace string `json:"namespace"`
	}
)

// defined is an entry with the file that defined it.
type defined[T any] struct {
	file string
	v    T
}

// merged is the merge of several kubeconfig files.
type merged struct {
	files          []string // the files read, in order
	currentContext string
	clusters       map[string]defined[fileCluster]
	users          map[string]defined[fileUser]
	contexts       map[string]defined[fileContext]
}

// merge adds the entries of one file that earlier files did not define.
func (kc *merged) merge(file string, data []byte) error {
	js, err := yaml.ToJSON(data)
	if err != nil {
		return fmt.Errorf("lease: kubeconfig %s: invalid YAML: %w", file, err)
	}
	var f fileFormat
	if err := json.Unmarshal(js, &f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("lease: kubeconfig %s: not a kubeconfig file: field %s: unexpected %s", file, te.Field, te.Value)
		}
		return fmt.Errorf("lease: kubeconfig %s: not a kubeconfig file: %w", file, err)
	}
	kc.files = append(kc.files, file)
	if kc.currentContext == "" {
		kc.currentContext = f.CurrentContext
	}
	for _, c := range f.Clusters {
		if _, ok := kc.clusters[c.Name]; !ok {
			kc.clusters[c.Name] = defined[fileCluster]{file, c.Cluster}
		}
	}
	for _, u := range f.Users {
		if _, ok := kc.users[u.Name]; !ok {
			kc.users[u.Name] = defined[fileUser]{file, u.User}
		}
	}
	for _, c := range f.Contexts {
		if _, ok := kc.contexts[c.Name]; !ok {
			kc.contexts[c.Name] = defined[fileContext]{file, c.Context}
		}
	}
	return nil
}
