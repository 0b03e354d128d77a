"""CRD admission as kube-apiserver performs it (prune, default, OpenAPI validation, CEL rules).

One implementation serves the dev cluster (which answers 422 with these causes) and the offline
checks of `ssvm-operator render`; it needs cel-python (the devcluster/test extras) for CEL rules.
"""
