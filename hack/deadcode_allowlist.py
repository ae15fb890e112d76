"""Names ``python -m devtools.deadcode`` would report but that are used where vulture cannot see.

Each line names the attribute and says who uses it. Never imported; only scanned.
"""

# ruff: noqa: B018

_ = object()

# pydantic fields of the CRD models: part of the schema, written by keyword or read by kubectl.
_.target_nodes  # CachedImageStatus, written by keyword
_.pulling_nodes  # CachedImageStatus, written by keyword
_.failed_nodes  # CachedImageStatus, written by keyword
_.images_using  # PullPolicyStatus, shown by `kubectl get pullpolicies`
_.toleration_seconds  # Toleration, copied to pull pods verbatim
_.block_owner_deletion  # OwnerReference, as the API server sends it
_.creation_timestamp  # ObjectMeta, as the API server sends it
_.finalizers  # ObjectMeta, as the API server sends it

# Attributes and protocol methods set or called by libraries.
_.user_agent  # kubernetes_asyncio ApiClient reads it for every request
_._trust_env  # aiohttp ClientSession reads it for every request
_.proxy_headers  # kubernetes_asyncio RESTClientObject reads it from the Configuration
_.ignore_aliases  # yaml.SafeDumper calls it
_.exc_type  # __aexit__ protocol
_.tb  # __aexit__ protocol
_.is_release  # discovery Version: compared as part of the ordered dataclass
_.mtime  # tarfile.TarInfo: written into each layer entry by devtools.ociimage

# Dev tooling kept for manual use.
_.restart_apiserver  # devtools.localcluster: an API server outage, for reconnect tests
_.metrics_url  # devtools.stack.OperatorProcess: printed for people running the stack
_.remove_image  # devtools.realnodes.RealNode: removes an image from a node's store as kubelet image GC does
