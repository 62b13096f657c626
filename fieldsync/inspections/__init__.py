"""Inspections (现场检查) recorded by officers and problem reports (事件上报) by grid workers."""
