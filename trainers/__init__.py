"""ORBIT-style meta-RL and on-policy distillation trainers (built on TRL)."""
