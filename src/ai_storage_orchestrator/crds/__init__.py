"""The PodMigration CRD, shipped as package data (podmigrations.yaml) for `serve --install-crd`."""
