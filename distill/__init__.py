"""Distillation: guidance-distilled and few-step students from the IGR teacher."""
