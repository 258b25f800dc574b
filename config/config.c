/* placeholder */ typedef int vf_config_placeholder_;
