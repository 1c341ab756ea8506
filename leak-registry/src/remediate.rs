//! Removing or replacing a leaking image: deletion by digest after naming
//! every tag it removes, and pointing a tag at a fixed image.

use bytes::Bytes;
use oci_spec::image::Digest;
use reqwest::Method;
use serde::Serialize;

use crate::auth::Scope;
use crate::client::{RegistryClient, Request};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestKind, is_deletion_disabled};
use crate::push::BlobTransfer;
use crate::reference::Reference;

/// Whether a remediation only reports what it would do, or does it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Execution {
    /// Report what would change; send no DELETE or PUT.
    DryRun,
    /// Make the change.
    Execute,
}

/// The tags that deleting one manifest digest removes.
///
/// Registries delete manifests by digest, and every tag on that digest goes
/// with it. The caller must [`accept`](DeletePlan::accept) the tag list
/// before [`RegistryClient::delete`] runs with [`Execution::Execute`].
#[derive(Clone, Debug, Serialize)]
pub struct DeletePlan {
    /// The registry host.
    pub registry: String,
    /// The repository.
    pub repository: String,
    /// The manifest digest to delete.
    pub digest: String,
    /// Every tag that points at the digest and disappears with it.
    pub tags_removed: Vec<String>,
    /// Tags whose index lists the digest as a child; they stay but the child
    /// they list will be gone.
    pub indexes_referencing: Vec<String>,
    #[serde(skip)]
    accepted: Option<Vec<String>>,
}

impl DeletePlan {
    /// Records that the caller accepts losing `tags`; they must equal
    /// [`tags_removed`](Self::tags_removed), in any order.
    ///
    /// # Errors
    ///
    /// [`Error::SiblingTagsChanged`] when the lists differ.
    pub fn accept(mut self, tags: &[String]) -> Result<Self> {
        let mut accepted = tags.to_vec();
        accepted.sort();
        accepted.dedup();
        if accepted != self.tags_removed {
            return Err(self.changed(accepted, self.tags_removed.clone()));
        }
        self.accepted = Some(accepted);
        Ok(self)
    }

    fn changed(&self, accepted: Vec<String>, current: Vec<String>) -> Error {
        Error::SiblingTagsChanged {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            digest: self.digest.clone(),
            accepted,
            current,
        }
    }
}

/// The result of [`RegistryClient::delete`].
#[derive(Clone, Debug, Serialize)]
pub struct DeleteOutcome {
    /// The plan that ran.
    pub plan: DeletePlan,
    /// Whether the DELETE was sent.
    pub execution: Execution,
}

/// The changes that replacing a tag with a fixed image makes.
#[derive(Clone, Debug, Serialize)]
pub struct ReplacePlan {
    /// The repository and tag being replaced, such as `app:1.0`.
    pub target: String,
    /// The digest the tag points at now.
    pub old_digest: String,
    /// The fixed image, such as `app:1.2`.
    pub source: String,
    /// The digest the tag will point at.
    pub new_digest: String,
    /// Blobs the fixed image needs, with the manifest that lists them.
    pub blobs: Vec<String>,
    /// Child manifests pushed by digest before an index.
    pub child_manifests: Vec<String>,
}

/// The result of [`RegistryClient::replace`].
#[derive(Clone, Debug, Serialize)]
pub struct ReplaceOutcome {
    /// The plan that ran.
    pub plan: ReplacePlan,
    /// Whether anything was pushed.
    pub execution: Execution,
    /// Blobs linked from the source repository.
    pub blobs_mounted: usize,
    /// Blobs uploaded because the registry declined to mount them.
    pub blobs_uploaded: usize,
}

impl RegistryClient {
    /// Lists what deleting `digest` from `repository` removes: every tag on
    /// that digest, and tags of indexes that list it.
    ///
    /// # Errors
    ///
    /// The errors of [`tags`](Self::tags) and [`manifest_digest`](Self::manifest_digest).
    pub async fn plan_delete(&self, repository: &str, digest: &Digest) -> Result<DeletePlan> {
        let (tags_removed, indexes_referencing) = self.tags_on_digest(repository, digest).await?;
        Ok(DeletePlan {
            registry: self.registry().to_owned(),
            repository: repository.to_owned(),
            digest: digest.to_string(),
            tags_removed,
            indexes_referencing,
            accepted: None,
        })
    }

    /// Deletes the manifest of an accepted plan, or reports it in a dry run.
    ///
    /// Before the DELETE, the tags on the digest are listed again; if they
    /// differ from the accepted list, nothing is deleted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when executing a plan never accepted,
    /// [`Error::SiblingTagsChanged`], [`Error::DeletionDisabled`] for 400 and
    /// 405 responses, access and transport errors.
    pub async fn delete(&self, plan: DeletePlan, execution: Execution) -> Result<DeleteOutcome> {
        if execution == Execution::DryRun {
            return Ok(DeleteOutcome { plan, execution });
        }
        let Some(accepted) = plan.accepted.clone() else {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "delete of {}@{} was not accepted; call DeletePlan::accept with the tags it removes",
                    plan.repository, plan.digest
                ),
            });
        };
        let digest = crate::digest::parse_digest(&plan.digest)?;
        let (current, _) = self.tags_on_digest(&plan.repository, &digest).await?;
        if current != accepted {
            return Err(plan.changed(accepted, current));
        }
        self.send_delete(&plan.repository, &digest).await?;
        tracing::info!(registry = %self.registry(), repository = %plan.repository, digest = %plan.digest, tags = ?plan.tags_removed, "deleted manifest");
        Ok(DeleteOutcome { plan, execution })
    }

    /// Plans pointing `target` (a tag) at the image `source`, which may live in
    /// another repository of this registry.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidReference`] when `target` has no tag or names another
    /// registry, and the errors of [`manifest`](Self::manifest).
    pub async fn plan_replace(
        &self,
        target: &Reference,
        source: &Reference,
    ) -> Result<ReplacePlan> {
        let tag = self.check_replace_target(target, source)?;
        let old_digest = self.manifest_digest(target.repository(), tag).await?;
        let fixed = self
            .manifest(source.repository(), &source.manifest_reference())
            .await?;
        let mut blobs = Vec::new();
        let mut child_manifests = Vec::new();
        for image in self.images_of(source.repository(), &fixed).await? {
            if image.digest != fixed.digest {
                child_manifests.push(image.digest.to_string());
            }
            if let ManifestKind::Image(manifest) = &image.kind {
                blobs.push(manifest.config().digest().to_string());
                blobs.extend(
                    manifest
                        .layers()
                        .iter()
                        .map(|layer| layer.digest().to_string()),
                );
            }
        }
        blobs.sort();
        blobs.dedup();
        Ok(ReplacePlan {
            target: format!("{}:{tag}", target.repository()),
            old_digest: old_digest.to_string(),
            source: format!("{}:{}", source.repository(), source.manifest_reference()),
            new_digest: fixed.digest.to_string(),
            blobs,
            child_manifests,
        })
    }

    /// Pushes the fixed image to the leaking tag, mounting blobs from the
    /// source repository when it differs; a dry run pushes nothing.
    ///
    /// # Errors
    ///
    /// The errors of [`plan_replace`](Self::plan_replace), blob transfer and
    /// manifest PUT.
    pub async fn replace(
        &self,
        target: &Reference,
        source: &Reference,
        execution: Execution,
    ) -> Result<ReplaceOutcome> {
        let plan = self.plan_replace(target, source).await?;
        let mut outcome = ReplaceOutcome {
            plan,
            execution,
            blobs_mounted: 0,
            blobs_uploaded: 0,
        };
        if execution == Execution::DryRun {
            return Ok(outcome);
        }
        let fixed = self
            .manifest(source.repository(), &source.manifest_reference())
            .await?;
        let images = self.images_of(source.repository(), &fixed).await?;
        for image in &images {
            self.copy_image_blobs(
                target.repository(),
                source.repository(),
                image,
                &mut outcome,
            )
            .await?;
        }
        for image in images.iter().filter(|image| image.digest != fixed.digest) {
            self.put_manifest(
                target.repository(),
                image.digest.as_ref(),
                &image.media_type,
                image.bytes.clone(),
            )
            .await?;
        }
        let tag = self.check_replace_target(target, source)?;
        self.put_manifest(
            target.repository(),
            tag,
            &fixed.media_type,
            Bytes::clone(&fixed.bytes),
        )
        .await?;
        tracing::info!(registry = %self.registry(), target = %outcome.plan.target, new_digest = %outcome.plan.new_digest, "replaced tag");
        Ok(outcome)
    }

    async fn copy_image_blobs(
        &self,
        repository: &str,
        from: &str,
        image: &Manifest,
        outcome: &mut ReplaceOutcome,
    ) -> Result<()> {
        let ManifestKind::Image(manifest) = &image.kind else {
            return Ok(());
        };
        let descriptors = std::iter::once(manifest.config()).chain(manifest.layers().iter());
        for descriptor in descriptors {
            let transfer = self
                .ensure_blob(
                    repository,
                    from,
                    descriptor.digest(),
                    Some(descriptor.size()),
                )
                .await?;
            match transfer {
                BlobTransfer::Mounted => outcome.blobs_mounted += 1,
                BlobTransfer::Uploaded => outcome.blobs_uploaded += 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// Returns the manifest itself and, for an index, every child manifest (recursively).
    async fn images_of(
        &self,
        repository: &str,
        root: &std::sync::Arc<Manifest>,
    ) -> Result<Vec<std::sync::Arc<Manifest>>> {
        let mut all = vec![root.clone()];
        let mut pending = vec![root.clone()];
        while let Some(manifest) = pending.pop() {
            if let ManifestKind::Index(index) = &manifest.kind {
                for entry in index.manifests() {
                    let child = self.manifest(repository, entry.digest().as_ref()).await?;
                    all.push(child.clone());
                    pending.push(child);
                }
            }
        }
        Ok(all)
    }

    fn check_replace_target<'a>(
        &self,
        target: &'a Reference,
        source: &Reference,
    ) -> Result<&'a str> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: target.to_string(),
            reason: reason.to_owned(),
        };
        if target.registry() != self.registry() || source.registry() != self.registry() {
            return Err(invalid(
                "the target and the fixed image must be on this client's registry",
            ));
        }
        target
            .tag()
            .ok_or_else(|| invalid("the target must name a tag"))
    }

    /// Returns tags pointing at `digest`, and tags of indexes that list it, both sorted.
    async fn tags_on_digest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let mut direct = Vec::new();
        let mut through_index = Vec::new();
        for tag in self.tags(repository).await? {
            let tag_digest = match self.manifest_digest(repository, &tag).await {
                Ok(tag_digest) => tag_digest,
                Err(Error::NotFound { .. }) => continue,
                Err(error) => return Err(error),
            };
            if &tag_digest == digest {
                direct.push(tag);
                continue;
            }
            let manifest = self.manifest(repository, tag_digest.as_ref()).await?;
            if let ManifestKind::Index(index) = &manifest.kind
                && index
                    .manifests()
                    .iter()
                    .any(|entry| entry.digest() == digest)
            {
                through_index.push(tag);
            }
        }
        direct.sort();
        through_index.sort();
        Ok((direct, through_index))
    }

    async fn send_delete(&self, repository: &str, digest: &Digest) -> Result<()> {
        let url = self.url(&format!("/v2/{repository}/manifests/{digest}"))?;
        let request = Request::get(
            url,
            format!("DELETE manifest {repository}@{digest}"),
            vec![Scope::delete(repository)],
        )
        .with_method(Method::DELETE, false)
        .with_target(repository, format!("manifest {digest}"));
        let reply = self.execute(&request).await?;
        if is_deletion_disabled(reply.status()) {
            return Err(Error::DeletionDisabled {
                registry: self.registry().to_owned(),
                repository: repository.to_owned(),
                digest: digest.to_string(),
                status: reply.status().as_u16(),
            });
        }
        self.expect_success(&request, reply).await.map(drop)
    }
}
