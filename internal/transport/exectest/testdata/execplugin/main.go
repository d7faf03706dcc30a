// Command execplugin is a Kubernetes exec credential plugin for the tests of
// the connection code (packages lease and transport). It answers with the
// apiVersion it finds in $KUBERNETES_EXEC_INFO and is driven by environment
// variables:
//
//	PLUGIN_COUNTER_FILE  a line is appended to it on each run
//	PLUGIN_INFO_FILE     $KUBERNETES_EXEC_INFO is written to it
//	PLUGIN_SLEEP         a time.Duration to sleep before answering
//	PLUGIN_TOKEN         status.token
//	PLUGIN_TOKEN_FILE    status.token is read from this file instead
//	PLUGIN_MODE=cert     status.clientCertificateData and clientKeyData from
//	                     PLUGIN_CERT_FILE and PLUGIN_KEY_FILE
//	PLUGIN_EXPIRES_AT    status.expirationTimestamp, verbatim
//	PLUGIN_EXPIRES_IN    status.expirationTimestamp, this long from now
//	PLUGIN_API_VERSION   the apiVersion to answer with instead
//	PLUGIN_STDOUT        printed instead of an ExecCredential
//	PLUGIN_FAIL          printed on stderr, after the answer on stdout; then
//	                     exit status 1
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	if f := os.Getenv("PLUGIN_COUNTER_FILE"); f != "" {
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			die("counter file: %v", err)
		}
		fmt.Fprintln(fh, "run")
		fh.Close()
	}
	info := os.Getenv("KUBERNETES_EXEC_INFO")
	if f := os.Getenv("PLUGIN_INFO_FILE"); f != "" {
		if err := os.WriteFile(f, []byte(info), 0o600); err != nil {
			die("info file: %v", err)
		}
	}
	var in struct {
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal([]byte(info), &in); err != nil || in.APIVersion == "" {
		die("KUBERNETES_EXEC_INFO is not an ExecCredential")
	}
	if d := os.Getenv("PLUGIN_SLEEP"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			die("PLUGIN_SLEEP: %v", err)
		}
		time.Sleep(dur)
	}
	if out, ok := os.LookupEnv("PLUGIN_STDOUT"); ok {
		fmt.Print(out)
		finish()
		return
	}
	status := map[string]string{}
	tok := os.Getenv("PLUGIN_TOKEN")
	if f := os.Getenv("PLUGIN_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			die("token file: %v", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok != "" {
		status["token"] = tok
	}
	if os.Getenv("PLUGIN_MODE") == "cert" {
		cert, err := os.ReadFile(os.Getenv("PLUGIN_CERT_FILE"))
		if err != nil {
			die("cert file: %v", err)
		}
		key, err := os.ReadFile(os.Getenv("PLUGIN_KEY_FILE"))
		if err != nil {
			die("key file: %v", err)
		}
		status["clientCertificateData"] = string(cert)
		status["clientKeyData"] = string(key)
	}
	if at := os.Getenv("PLUGIN_EXPIRES_AT"); at != "" {
		status["expirationTimestamp"] = at
	} else if in := os.Getenv("PLUGIN_EXPIRES_IN"); in != "" {
		dur, err := time.ParseDuration(in)
		if err != nil {
			die("PLUGIN_EXPIRES_IN: %v", err)
		}
		status["expirationTimestamp"] = time.Now().Add(dur).UTC().Format(time.RFC3339)
	}
	apiVersion := in.APIVersion
	if v, ok := os.LookupEnv("PLUGIN_API_VERSION"); ok {
		apiVersion = v
	}
	out, err := json.Marshal(map[string]any{"apiVersion": apiVersion, "kind": "ExecCredential", "status": status})
	if err != nil {
		die("encoding: %v", err)
	}
	fmt.Println(string(out))
	finish()
}

// finish fails with PLUGIN_FAIL on stderr when it is set.
func finish() {
	if msg := os.Getenv("PLUGIN_FAIL"); msg != "" {
		fmt.Fprint(os.Stderr, msg)
		os.Exit(1)
	}
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "execplugin: "+format+"\n", args...)
	os.Exit(2)
}
