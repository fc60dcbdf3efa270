"""Readers of public driving datasets (DriveLM-nuScenes, nuScenes tables): no ROS, no image decoding."""
