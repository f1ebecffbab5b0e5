"""The fault campaign (`make chaos`): many migrations on the real control plane, a fault injected at every phase
boundary, and the one invariant checked after each: the pod is never lost, nothing is left stuck."""
