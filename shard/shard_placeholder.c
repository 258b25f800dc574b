/* placeholder */ typedef int vf_shard_placeholder_;
