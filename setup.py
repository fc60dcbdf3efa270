"""Build script of the ``spotvlm_ros`` ament_python package (also a plain pip package)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "spotvlm_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="SpotVLM: Context Transfer for cloud-edge vision-language models on ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    # the trained demo models are loaded from their files: package data, and no zipped install
    package_data={PACKAGE: ["third_party/vision_msgs/msg/*.msg", "demo_models/*/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.*")),
        (f"share/{PACKAGE}/config/examples", glob("config/examples/*.yaml")),
        (f"share/{PACKAGE}/rosbags", glob("rosbags/*.md")),
        (f"share/{PACKAGE}/rosbags/demo", glob("rosbags/demo/*")),
        (f"share/{PACKAGE}/interfaces/msg", glob("spotvlm_msgs/msg/*.msg")),
        (f"share/{PACKAGE}/interfaces/action", glob("spotvlm_msgs/action/*.action")),
    ],
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "pydantic>=2.5",
        "rosbags>=0.10",
        "rich>=13",
        "tqdm>=4.60",
        "httpx>=0.27",
        "rouge-score>=0.1.2",
        "sacrebleu>=2.3",
        "pyarrow>=14",
        "setuptools",
    ],
    extras_require={
        "ml": [
            "torch>=2.2",
            # tested with 5.23.0 (oldest that runs every model family) and 5.25.0; 6.0 drops past_key_values
            "transformers>=5.23,<6",
            "tokenizers>=0.20",
            "num2words>=0.5",  # the SmolVLM / SmolVLM2 processor needs it
            "safetensors>=0.4",
            "pillow>=10",
            "jinja2>=3.1",
        ],
        "viz": ["matplotlib>=3.7", "mcap>=1.1", "mcap-ros2-support>=0.5"],
        "docs": ["mkdocs>=1.6,<2", "mkdocs-material>=9.5,<10"],
        "test": [
            "pytest>=8,<9",  # ROS 2 Jazzy's launch_testing plugin needs pytest < 9
            "hypothesis>=6.100",
            "catkin_pkg>=1.0",
            "ruff>=0.6",
            "mcap>=1.1",
            "mcap-ros2-support>=0.5",
            "fastapi",
            "uvicorn",
            "openai>=1.50",
            "accelerate>=1.0",
        ],
    },
    zip_safe=False,
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "spotvlm = spotvlm_ros.cli:main",
            "spotvlm_edge = spotvlm_ros.nodes.edge_node:main",
            "spotvlm_bridge = spotvlm_ros.nodes.bridge_node:main",
            "spotvlm_lvlm_server = spotvlm_ros.nodes.lvlm_server_node:main",
        ],
    },
)
