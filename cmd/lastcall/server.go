package main

import (
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/lastcall-dev/lastcall/internal/server"
)

func newServerCommand() *cobra.Command {
	cfg := server.Defaults
	var kubeconfig, logLevel string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the run controller and the HTTP API (gate, state)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			restCfg, err := loadConfig(kubeconfig)
			if err != nil {
				return err
			}
			srv, err := server.New(restCfg, cfg, log)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "address of the HTTP API (Flagger gate, state service)")
	f.StringVar(&cfg.GateAddr, "gate-addr", "", "address of Flagger's endpoints (/flagger/*, /gate/*, /rollback/*); empty: --http-addr")
	f.StringVar(&cfg.StateAddr, "state-addr", "", "address of the state API (/v1/state, /state/save) and of POST /v1/runs; empty: --http-addr")
	f.DurationVar(&cfg.DrainDelay, "drain-delay", cfg.DrainDelay, "after SIGTERM, how long the API keeps serving while /readyz fails, so load balancers stop sending first")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "after the drain delay, how long requests in flight may take to finish; drain delay plus this must stay under the pod's grace period")
	f.IntVar(&cfg.MaxConnections, "max-connections", cfg.MaxConnections, "open connections per API listener; more wait in the kernel's backlog")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "address of the Prometheus /metrics endpoint")
	f.StringVar(&cfg.HealthAddr, "health-addr", cfg.HealthAddr, "address of /healthz and /readyz")
	f.StringVar(&cfg.PprofAddr, "pprof-addr", "", "address of net/http/pprof (/debug/pprof/), for profiling; empty serves none. Keep it off the Service: it is unauthenticated")
	f.BoolVar(&cfg.LeaderElect, "leader-elect", cfg.LeaderElect, "elect one replica to execute runs (a Lease); all replicas serve the API")
	f.StringVar(&cfg.LeaderElectionNamespace, "leader-election-namespace", cfg.LeaderElectionNamespace, "namespace of the leader-election Lease")
	f.DurationVar(&cfg.LeaseDuration, "leader-elect-lease-duration", cfg.LeaseDuration, "how long a lost leader's Lease blocks a new leader")
	f.DurationVar(&cfg.RenewDeadline, "leader-elect-renew-deadline", cfg.RenewDeadline, "how long the leader retries renewing before giving up")
	f.DurationVar(&cfg.RetryPeriod, "leader-elect-retry-period", cfg.RetryPeriod, "interval between leader-election attempts")
	f.StringVar(&cfg.CallbackURL, "callback-url", cfg.CallbackURL, "URL at which Argo Workflows reach this server (passed as the callback-url parameter)")
	f.StringVar(&cfg.ControlTokenFile, "control-token-file", cfg.ControlTokenFile, "file holding a bearer token allowed everything (gate overrides, state in all namespaces); mount it from a Secret")
	f.StringVar(&cfg.Audience, "audience", cfg.Audience, "audience that callers' ServiceAccount tokens must be issued for")
	f.StringSliceVar(&cfg.TokenIssuers, "token-issuer", nil, "issuers (\"iss\") a ServiceAccount token may carry; default: the API server's, from its OIDC discovery, and kubernetes/serviceaccount")
	f.Float32Var(&cfg.TokenReviewQPS, "token-review-qps", cfg.TokenReviewQPS, "TokenReviews per second, on a client of their own; beyond the burst, requests get 429")
	f.IntVar(&cfg.TokenReviewBurst, "token-review-burst", cfg.TokenReviewBurst, "TokenReviews allowed at once above --token-review-qps")
	f.StringVar(&cfg.State.URL, "state-url", cfg.State.URL, "state store: file:///path, s3://bucket?region=... (gocloud.dev/blob URL)")
	f.Int64Var(&cfg.State.MaxObjectBytes, "state-max-object-bytes", cfg.State.MaxObjectBytes, "largest state object a PUT may store")
	f.Int64Var(&cfg.State.MaxSaveBytes, "state-max-save-bytes", cfg.State.MaxSaveBytes, "largest POST /state/save body")
	f.Int64Var(&cfg.State.NamespaceMaxBytes, "state-namespace-max-bytes", cfg.State.NamespaceMaxBytes, "bytes one namespace may store, every version counted (507 QuotaExceeded beyond; 0: no limit)")
	f.IntVar(&cfg.State.NamespaceMaxKeys, "state-namespace-max-keys", cfg.State.NamespaceMaxKeys, "keys one namespace may store (507 QuotaExceeded beyond; 0: no limit)")
	f.IntVar(&cfg.State.KeepVersions, "state-keep-versions", cfg.State.KeepVersions, "versions kept per state key")
	f.DurationVar(&cfg.State.Retention, "state-retention", cfg.State.Retention, "age after which state versions are deleted")
	f.IntVar(&cfg.MaxConcurrentRuns, "max-concurrent-runs", cfg.MaxConcurrentRuns, "runs the leader executes at once; the others stay Pending until a slot frees")
	f.StringVar(&cfg.TLSCertFile, "tls-cert-file", "", "serve the gate, state and runs API over TLS with this certificate (PEM; re-read when it changes, e.g. a cert-manager Secret)")
	f.StringVar(&cfg.TLSKeyFile, "tls-key-file", "", "the key of --tls-cert-file")
	f.StringSliceVar(&cfg.StepURLPrefixes, "step-url-prefix", nil, "URL prefix (http(s)://host/path/) that a policy's step endpoint.url or notify exit handler may call; repeatable. None by default: steps call only the pods of their run")
	f.StringVar(&cfg.Gate.MeshProvider, "flagger-mesh-provider", cfg.Gate.MeshProvider, "Flagger's -mesh-provider: the provider of Canaries without spec.provider, which says where their traffic goes (the gate drains old pods only when they carry none)")
	f.DurationVar(&cfg.Gate.RunTTL, "gate-run-ttl", cfg.Gate.RunTTL, "how long a run started by the gate or by POST /v1/runs is kept after it completed (its spec.ttlSecondsAfterFinished)")
	f.Int64Var(&cfg.Gate.MaxBodyBytes, "gate-max-body-bytes", cfg.Gate.MaxBodyBytes, "largest Flagger webhook body the gate reads (413 beyond)")
	f.BoolVar(&cfg.Watch, "watch", cfg.Watch, "watch for failed lifecycle hooks and containers SIGKILLed at their termination deadline (metrics, Events)")
	f.DurationVar(&cfg.State.PruneInterval, "state-prune-interval", cfg.State.PruneInterval, "how often the leader applies retention to the whole store")
	return cmd
}

// loadConfig uses --kubeconfig when given, else controller-runtime's rules
// (in-cluster, then $KUBECONFIG, then ~/.kube/config).
func loadConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return config.GetConfig()
}
